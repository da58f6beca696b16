"""The virtual reader box: the unmodified firmware (deployed by `telegest device deploy`'s code)
boots on the real MicroPython with the machine/network/socket stand-ins, answers its serial
console, joins the virtual access point, reads cards from the PN532 simulator over its UART,
and stops at Ctrl-C for mpremote as a board does."""
from __future__ import annotations

import time

import pytest

from tools.field.console import ReaderConsole
from tools.field.deploy import deploy
from tools.sim.pn532 import PN532Sim
from tools.vboard import VirtualBoard, VirtualBoardError

pytestmark = [pytest.mark.virtual_hw, pytest.mark.micropython]

# Backslash, double and single quotes and spaces, sent exactly. Not UTF-8 yet: the firmware's
# console reads sys.stdin one character at a time and stores ord(c) as a byte, so "ö" arrives
# as 0xF6 ("error: not UTF-8"), on a board as here (field-provision's part of issue 17).
AP = ("Maison Dupont", 'p\\a"ss w\'rd')


def wait_for(fn, timeout, what):
    end = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def box():
    sim = PN532Sim()
    port = sim.serve_tcp()
    try:
        board = VirtualBoard(box=True, ap=AP, uarts={2: ("127.0.0.1", port)},
                             unique_id="a1b2c3d4e5f6").start()
    except VirtualBoardError as e:
        sim.close()
        pytest.fail(str(e))
    board.sim = sim
    try:
        deploy(board.url)
        yield board
    finally:
        board.stop()
        sim.close()


def status(board):
    with ReaderConsole(board.url, timeout=5) as c:
        return c.command("status")


def test_the_firmware_boots_to_its_loop_and_answers_its_console(box):
    s = status(box)
    assert s["fw"] == "0.1.0" and s["mode"] == "normal"
    assert s["id"] == "tg-a1b2c3d4e5f6", "machine.unique_id() from the bridge"
    assert s["rd"] == "ok", "the PN532 simulator answered over the UART"
    assert s["settings"] == "ok" and s["planning"] == "none"
    with ReaderConsole(box.url, timeout=5) as c:
        st = c.command("selftest")
        assert st["reader"] == "PN532 v1.6" and st["reader_ok"] is True
        assert st["rtc"] == "absent", "nothing on the virtual I2C bus"
        scan = c.command("wifi scan")["networks"]
        assert [n["ssid"] for n in scan] == [AP[0]] and scan[0]["open"] is False


def test_wifi_joins_only_with_the_exact_password(box):
    with ReaderConsole(box.url, timeout=5) as c:
        c.command(f'wifi set "{AP[0]}" "wrong-password"')
        time.sleep(1.0)
        assert c.command("status")["wifi"] in ("joining", "down")
        esc = AP[1].replace("\\", "\\\\").replace('"', '\\"')
        c.command(f'wifi set "{AP[0]}" "{esc}"')
        wait_for(lambda: c.command("status")["wifi"] == "up", 10, "wifi up")
        w = c.command("wifi")
        assert w["ssid"] == AP[0] and w["ip"] == "192.168.4.17" and w["rssi"] == -52
        wait_for(lambda: c.command("status")["tq"] == "synced", 10, "the clock synced")


def test_a_card_on_the_simulated_pn532_is_one_tap_in_the_journal(box):
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    with ReaderConsole(box.url, timeout=5) as c:
        before = c.command("journal")["last"]
        box.sim.place_tag(uid)
        taps = wait_for(lambda: c.command("taps")["taps"], 10, "the tap")
        box.sim.remove_tag()
        assert taps[-1]["uid"] == "04A1B2C3D4E5F6"
        assert c.command("journal")["last"] == before + 1, "one card on the reader, one tap"


def test_ctrl_c_stops_the_firmware_for_mpremote_and_a_reset_starts_it_again(box):
    plan = deploy(box.url)  # Ctrl-C, raw REPL, hash every file, soft reset into main.py
    assert plan.copied == [] and not plan.write_manifest, "nothing changed since the deploy"
    s = status(box)
    assert s["mode"] == "normal" and s["boots"] >= 1
    with ReaderConsole(box.url, timeout=5) as c:
        assert c.command("reboot") == "ok"  # machine.reset(): the box starts from power-on
        seen = b""  # the reset's boot banner comes on the line, as on a board
        end = time.monotonic() + 5
        while b"rst:0xc (SW_CPU_RESET)" not in seen and time.monotonic() < end:
            seen += c.port.read(256)
        assert b"rst:0xc (SW_CPU_RESET)" in seen, seen
        up = wait_for(lambda: _up_after_reboot(c), 15, "the firmware back after reboot")
        assert up["up"] < 10


def _up_after_reboot(c):
    from tools.field.console import ConsoleError

    try:
        s = c.command("status")
    except ConsoleError:
        return None
    return s if s["up"] < 5 else None


@pytest.fixture
def silent_server():
    """A TCP server that accepts and then never sends a byte (a hung broker)."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


def test_sockets_time_out_and_fail_as_on_a_board(silent_server):
    """The socket stand-in through the Node bridge: a peer that never answers costs the
    timeout, not the board; a closed port is refused; no Wi-Fi, no route."""
    from mpremote.transport_serial import SerialTransport

    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    board = VirtualBoard(box=True, ap=("lab", "lab-password")).start()
    try:
        t = SerialTransport(board.url)
        t.enter_raw_repl(soft_reset=False)
        out = t.exec(f"""
import network, socket, time, errno
s = socket.socket()
try:
    s.connect(("127.0.0.1", {silent_server}))
except OSError as e:
    print("no wifi", e.errno)
w = network.WLAN(network.STA_IF); w.active(True); w.connect("lab", "lab-password")
time.sleep_ms(400)
s = socket.socket(); s.settimeout(0.3); s.connect(("127.0.0.1", {silent_server}))
t0 = time.ticks_ms()
try:
    s.recv(10)
except OSError as e:
    print("recv", e.errno, time.ticks_diff(time.ticks_ms(), t0) // 100)
s.setblocking(False)
print("nonblocking", s.read(4))
s.close()
try:
    socket.socket().connect(("127.0.0.1", {closed_port}))
except OSError as e:
    print("closed port", e.errno)
""").decode()
        t.close()
    finally:
        board.stop()
    lines = out.split("\n")
    assert "no wifi 113" in lines  # EHOSTUNREACH before the station joined
    assert "recv 110 3" in lines  # ETIMEDOUT after 0.3 s
    assert "nonblocking None" in lines
    assert "closed port 111" in lines  # ECONNREFUSED
