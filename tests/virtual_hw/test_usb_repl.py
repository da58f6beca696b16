"""Ctrl-C gives nothing away either (issue #11 item 6, "Still open"): on the virtual board
running the unmodified firmware, a box whose console is locked reads Ctrl-C (and mpremote's
Ctrl-C Ctrl-A way into the raw REPL) as bytes of its console line, before and after a reset;
`maint <code>` then `repl` let Ctrl-C through, which `telegest device deploy` does by itself
with a code from the fleet; a box without a key keeps its REPL.

On this port the bridge delivers Ctrl-C (tools/vboard/vboard.mjs), honouring the interrupt
character the firmware sets with micropython.kbd_intr, as the ESP32's UART/USB driver does."""
from __future__ import annotations

import secrets
import time

import pytest
import serial

from tests.field.test_provision import technician_key
from tests.virtual_hw.test_maintenance_console import (AP, IDENT, cli_code, deployed_box,
                                                       fleet_devices, wait_for)
from tools.field.console import ReaderConsole
from tools.field.deploy import Board, DeployError, deploy
from tools.field.provision import FleetApi, write_settings

pytestmark = [pytest.mark.virtual_hw, pytest.mark.micropython, pytest.mark.timeout(600)]

REPL = (b">>> ", b"raw REPL", b"KeyboardInterrupt", b"Traceback")


@pytest.fixture
def box():
    with deployed_box() as board:
        yield board


def send(url: str, data: bytes, wait: float = 1.5) -> bytes:
    """What the board prints within `wait` s of `data`, on a fresh connection."""
    ser = serial.serial_for_url(url, timeout=0)
    try:
        ser.write(data)
        out, end = b"", time.monotonic() + wait
        while time.monotonic() < end:
            out += ser.read(4096)
            time.sleep(0.05)
        return out
    finally:
        ser.close()


def status(url: str) -> dict:
    with ReaderConsole(url, timeout=5) as c:
        return c.command("status")


def test_a_locked_box_keeps_ctrl_c_from_its_repl_until_maintenance_and_repl(
        box, demo, api_server, capsys):
    db = demo[0]
    url = box.url
    # no key yet, as in the factory: Ctrl-C reaches the REPL; Ctrl-D restarts the firmware
    assert status(url)["console"] == "open"
    assert b">>> " in send(url, b"\r\x03\x03")
    send(url, b"\x04", wait=0.5)
    wait_for(lambda: status(url)["console"] == "open", 30, "the firmware back")

    keys = fleet_devices(db)
    with ReaderConsole(url, timeout=5) as c:
        doc = {"ssid": AP[0], "password": AP[1], "user": IDENT,
               "pass": secrets.token_urlsafe(24), "mkey": keys[IDENT]}
        staged = write_settings(c, doc, say=lambda s: None)
        c.command(f"settings commit {staged['digest']}")
        assert c.command("exit") == {"console": "locked"}
        wait_for(lambda: c.command("status")["tq"] == "synced", 30, "NTP over the Wi-Fi")

    # locked: Ctrl-C, and mpremote's Ctrl-C then Ctrl-A, are bytes of the console's line
    for keys_in in (b"\x03", b"\r\x03\x03", b"\r\x03\x03\r\x01", b"\r\x05A\x01\r"):
        out = send(url, keys_in)
        assert not any(s in out for s in REPL), (keys_in, out)
        assert status(url)["console"] == "locked"
    with pytest.raises(DeployError, match="no raw REPL|did not give its prompt"):
        Board(url, timeout=3)  # mpremote's own way in: Ctrl-C, Ctrl-A, soft reset
    assert status(url)["console"] == "locked"
    with pytest.raises(DeployError, match="locked console.*--fleet"):
        deploy(url, timeout=3)

    # a reset changes nothing: Ctrl-C sent all through the restart gets no REPL either
    with ReaderConsole(url, timeout=5) as c:
        c.command(f"maint {cli_code(db, IDENT, capsys)}")
        assert c.ask("reboot") == "ok"
    out = b"".join(send(url, b"\x03" * 20, wait=0.3) for _ in range(10))
    assert not any(s in out for s in REPL), out
    after = status(url)
    assert after["console"] == "locked" and after["boots"] >= 1

    # maintenance alone keeps it shut; `repl` lets Ctrl-C through
    with ReaderConsole(url, timeout=5) as c:
        wait_for(lambda: c.command("status")["tq"] == "synced", 30, "NTP after the reset")
        c.command(f"maint {cli_code(db, IDENT, capsys)}")
        assert c.ask("status").startswith("{")
    assert not any(s in send(url, b"\r\x03\x03") for s in REPL)
    with ReaderConsole(url, timeout=5) as c:
        assert c.command("repl") == {"repl": True}
    assert b">>> " in send(url, b"\r\x03\x03")
    send(url, b"\x04", wait=0.5)  # soft reset: the firmware again, locked again
    wait_for(lambda: status(url)["console"] == "locked", 30, "the firmware back, locked")

    # `telegest device deploy` does it all with a code from the fleet
    with ReaderConsole(url, timeout=5) as c:
        wait_for(lambda: c.command("status")["tq"] == "synced", 30, "NTP after the reset")
    said: list[str] = []
    p = deploy(url, timeout=5, fleet=FleetApi(api_server, technician_key(db)), say=said.append)
    assert p.unchanged > 0 and any("maintenance mode" in s for s in said)
    wait_for(lambda: status(url)["console"] == "locked", 30, "the deployed firmware, locked")
    assert not any(s in send(url, b"\r\x03\x03") for s in REPL)
