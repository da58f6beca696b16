"""`console` against the real firmware Console (CPython, fake hardware) behind a socket."""
from __future__ import annotations

import io
import json
import socket
import threading

import pytest

from tools.field.console import ConsoleError, ReaderConsole, passthrough, pretty

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(60)]


def test_status_selftest_journal_and_wifi_answer_parsed(console_server):
    with ReaderConsole(console_server.url) as c:
        st = c.command("status")
        assert (st["mode"], st["wifi"], st["mqtt"], st["settings"]) == ("normal", "up", "up", "ok")
        assert c.command("selftest")["reader"] == "PN532 v1.6"
        assert c.command("journal")["depth"] == 0
        assert c.command("wifi")["ssid"] == "home"
        assert set(c.command("help")["commands"]) >= {"status", "taps", "broker"}
        assert c.log and c.log[0].startswith("# ")  # log lines kept apart


def test_set_commands_reach_the_settings(console_server):
    with ReaderConsole(console_server.url) as c:
        assert c.command('wifi set "Maison 5G" motdepasse') == "ok"
        assert c.command("broker set host mqtt.example.org") == "ok"
        assert c.command("broker")["host"] == "mqtt.example.org"
    assert console_server.rt.settings.get("ssid") == "Maison 5G"


def test_a_refused_command_raises_with_the_readers_reason(console_server):
    with ReaderConsole(console_server.url) as c:
        with pytest.raises(ConsoleError, match="refused `wifi set …`: a WPA password") as e:
            c.command("wifi set home short")
        assert "short" not in str(e.value), "a password is never quoted back"
        assert c.ask("frobnicate") == "error: unknown command frobnicate (try help)"


def test_pretty_prints_json_and_passes_ok():
    assert pretty({"a": 1}) == '{\n  "a": 1\n}' and pretty("ok") == "ok"


def test_raw_mode_passes_lines_and_bytes_through(console_server):
    out = io.StringIO()
    passthrough(console_server.url, io.StringIO("journal\nstatus\n"), out, linger=0.8)
    lines = out.getvalue().splitlines()
    assert "# link: mqtt up" in lines
    assert json.loads([ln for ln in lines if ln.startswith('{"depth"')][0])["depth"] == 0


def _silent_server(greeting: bytes):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        conn, _ = srv.accept()
        with conn:
            conn.recv(100)
            conn.sendall(greeting)
            conn.recv(100)

    threading.Thread(target=run, daemon=True).start()
    return srv, f"socket://127.0.0.1:{srv.getsockname()[1]}"


def test_a_board_at_the_repl_is_explained():
    srv, url = _silent_server(b"\r\nMicroPython v1.27.0 on 2025-12-09\r\n>>> ")
    with srv, ReaderConsole(url, timeout=2) as c:
        with pytest.raises(ConsoleError, match="at the MicroPython prompt"):
            c.command("status")


def test_a_silent_board_is_explained():
    srv, url = _silent_server(b"")
    with srv, ReaderConsole(url, timeout=0.5) as c:
        with pytest.raises(ConsoleError, match="no answer from the reader .* within 0.5 s"):
            c.command("status")


def test_a_boot_banner_while_an_answer_is_awaited_is_not_the_answer():
    """A box restarting (provision waits across its reboot) prints the ESP32 ROM's and
    MicroPython's boot lines: they go to the log, the answer is the next real line."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.recv(100)
            conn.sendall(b"\r\nrst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
                         b"MPY: soft reboot\r\n# telegest 0.1.0 normal mode\r\n"
                         b'{"mode": "normal", "up": 0}\r\n')
            conn.recv(100)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with ReaderConsole(f"socket://127.0.0.1:{srv.getsockname()[1]}") as c:
            assert c.command("status") == {"mode": "normal", "up": 0}
            assert c.log[0].startswith("rst:0xc") and c.log[1] == "MPY: soft reboot"
    finally:
        srv.close()
