"""The field commands through their command table (tools/cli.py main), as a technician
types them: output, and one clear message with exit code 2 on failure."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from serial.tools import list_ports

from tests.field.images import merged
from tools.cli import main

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(120)]


def test_ports_names_the_esp32_bridges(monkeypatch, capsys):
    fake = [SimpleNamespace(device="/dev/ttyUSB0", vid=0x10C4, pid=0xEA60, description="CP2102"),
            SimpleNamespace(device="/dev/ttyACM0", vid=0x303A, pid=0x1001, description="USB JTAG"),
            SimpleNamespace(device="/dev/ttyACM1", vid=0x2341, pid=0x0043, description="Uno"),
            SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None, description="n/a")]
    monkeypatch.setattr(list_ports, "comports", lambda: fake)  # no USB devices on this machine
    assert main(["device", "ports"]) == 0
    out = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    assert "10C4:EA60" in out["/dev/ttyUSB0"] and "CP210x" in out["/dev/ttyUSB0"]
    assert "303A:1001" in out["/dev/ttyACM0"] and "native USB" in out["/dev/ttyACM0"]
    assert "not a known ESP32 bridge" in out["/dev/ttyACM1"]
    assert "no USB identity" in out["/dev/ttyS0"]


def test_ports_with_nothing_plugged(monkeypatch, capsys):
    monkeypatch.setattr(list_ports, "comports", lambda: [])
    assert main(["device", "ports"]) == 0
    assert "data USB cable" in capsys.readouterr().out


def test_flash_prints_the_chip_and_the_check(esp_sim, tmp_path, capsys):
    img = tmp_path / "mp.bin"
    img.write_bytes(merged())
    assert main(["device", "flash", esp_sim.url, str(img)]) == 0
    out, err = capsys.readouterr()
    assert "ESP32-D0WD-V3" in out and "verified (MD5" in out and "after a full erase" in out
    assert "100%" in err
    image = img.read_bytes()
    assert esp_sim.flash[0x1000:0x1000 + len(image)] == image


def test_flash_failure_is_one_line_and_exit_2(make_esp_sim, tmp_path, capsys):
    img = tmp_path / "mp.bin"
    img.write_bytes(merged())
    sim = make_esp_sim(boot_mode="app")
    assert main(["device", "flash", sim.url, str(img), "--connect-attempts", "1"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("telegest: no ESP32 bootloader answers") and "hold BOOT" in last
    assert "Traceback" not in err


def test_console_one_command_and_json(console_server, capsys):
    assert main(["device", "console", console_server.url, "journal"]) == 0
    assert json.loads(capsys.readouterr().out)["depth"] == 0
    assert main(["device", "console", "--json", console_server.url, "wifi", "set",
                 "Maison 5G", "motdepasse"]) == 0
    assert capsys.readouterr().out.strip() == '"ok"'
    assert console_server.rt.settings.get("ssid") == "Maison 5G"
    assert main(["device", "console", console_server.url, "status", "now"]) == 2
    assert "takes no arguments" in capsys.readouterr().err


def test_console_interactive(console_server, monkeypatch, capsys):
    lines = iter(["status", "", "taps", "quit"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(lines))
    assert main(["device", "console", console_server.url]) == 0
    out = capsys.readouterr().out
    assert '"mode": "normal"' in out and '"taps": []' in out


def test_deploy_dry_run_then_deploy_then_nothing(vboard, capsys):
    assert main(["device", "deploy", vboard.url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would copy   /lib/firmware/codec.mpy" in out and "would copy   /main.py" in out
    assert "dry run: " in out and "0 up to date" in out
    assert main(["device", "deploy", "--no-reset", vboard.url]) == 0
    assert "deployed firmware 0.1.0: " in capsys.readouterr().out
    assert main(["device", "deploy", vboard.url]) == 0
    assert " 0 copied, 0 deleted" in capsys.readouterr().out


def test_a_missing_port_for_deploy(capsys):
    assert main(["device", "deploy", "/dev/ttyUSB97"]) == 2
    assert "no serial port /dev/ttyUSB97" in capsys.readouterr().err


def test_badge_write_read_and_sheet(pn532_sim, tmp_path, capsys):
    pn532_sim.place_tag(bytes.fromhex("04a1b2c3d4e5f6"))
    assert main(["badge", "write", pn532_sim.url, "C12-7F3A"]) == 0
    assert "wrote and checked token 'C12-7F3A'" in capsys.readouterr().out
    assert main(["badge", "read", pn532_sim.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"][0]["text"] == "C12-7F3A"
    csv = tmp_path / "b.csv"
    csv.write_text("name,token\nMme Durand,C1-AAAA\n")
    out = tmp_path / "b.pdf"
    assert main(["badge", "sheet", str(out), "--csv", str(csv), "--badge", "M. Petit",
                 "C2-BBBB"]) == 0
    assert "2 badges on 1 A4 page" in capsys.readouterr().out
    assert out.read_bytes().count(b"/Subtype /Image") == 2


def test_badge_sheet_without_badges(tmp_path, capsys):
    assert main(["badge", "sheet", str(tmp_path / "x.pdf")]) == 2
    assert "no badges to print" in capsys.readouterr().err


# -- the bad arguments: one telegest: line, exit 2, nothing touched -----------------------
@pytest.mark.parametrize("argv,says", [
    (["device", "flash", "{esp}", "{img}", "--address", "xyz"],
     "argument --address: 'xyz' is not a flash offset"),
    (["device", "flash", "socket://127.0.0.1", "{img}"],
     "'socket://127.0.0.1' has no port: write socket://host:port"),
    (["device", "provision", "{esp}", "--ident", "r-0001", "--broker", "host:abc"],
     "bad broker address 'host:abc'"),
    (["device", "provision", "{esp}", "--ident", "r 50", "--broker", "127.0.0.1:1883"],
     "'r 50' is not a device id"),
    (["device", "console", "rfc2217://127.0.0.1:abc", "status"], "bad serial URL"),
    (["device", "tap", "r 50", "04A1B2C3"], "'r 50' is not a device id"),
    (["device", "tap", "demo-r1", "zz"], "'zz' is not a card UID"),
    (["fleet", "worker", "--broker", "127.0.0.1:99999"], "expected a TCP port from 1 to 65535"),
    (["fleet", "migrate", "--db", "not a url"], "bad database URL 'not a url'"),
    (["badge", "write", "{esp}", "C1", "--lang", ""], "is not a language code"),
])
def test_bad_arguments_are_one_line_and_exit_2(esp_sim, tmp_path, capsys, argv, says):
    img = tmp_path / "mp.bin"
    img.write_bytes(b"\xe9" + bytes(999))
    before = bytes(esp_sim.flash)
    argv = [a.format(esp=esp_sim.url, img=img) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("telegest: ") and says in lines[0], err
    assert bytes(esp_sim.flash) == before


def test_the_default_attempts_are_in_the_help(capsys):
    assert main(["device", "flash", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--connect-attempts" in out and "(default 7)" in out
    for cmd in (["device", "deploy"], ["badge", "write"], ["badge", "read"],
                ["device", "console"], ["device", "provision"]):
        assert main(cmd + ["--help"]) == 0
        assert "(default " in capsys.readouterr().out


def test_a_failing_connect_says_which_attempt_without_verbose(make_esp_sim, tmp_path, capsys):
    img = tmp_path / "mp.bin"
    img.write_bytes(merged())
    sim = make_esp_sim(boot_mode="app")
    assert main(["device", "flash", sim.url, str(img), "--connect-attempts", "3"]) == 2
    err = capsys.readouterr().err
    assert "connecting to the ESP32 bootloader on" in err
    assert ": attempt 2 of 3" in err and ": attempt 3 of 3" in err
    assert "attempt 4" not in err and "Traceback" not in err


@pytest.fixture
def say_at_once(monkeypatch):
    """Waits say what they wait for after 0.1 s instead of 2 (the tests wait less)."""
    monkeypatch.setattr("tools.waiting.SAY_AFTER", 0.1)
    monkeypatch.setattr("tools.waiting.SAY_EVERY", 0.1)


def test_waiting_for_a_badge_says_so(pn532_sim, capsys, say_at_once):
    assert main(["badge", "read", pn532_sim.url, "--timeout", "1.5"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"waiting for a badge on the reader\.\.\. \d s of 1\.5 s", err)
    assert err.strip().splitlines()[-1].startswith("telegest: no tag on the reader after 1.5 s")


def test_waiting_for_a_silent_board_says_so(tmp_path, capsys, say_at_once):
    """A port that takes the connection and never answers (a board without MicroPython)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(srv.accept()), daemon=True).start()
    try:
        assert main(["device", "deploy", f"socket://127.0.0.1:{srv.getsockname()[1]}",
                     "--timeout", "1.5"]) == 2
    finally:
        srv.close()
    err = capsys.readouterr().err
    assert "waiting for the MicroPython prompt on socket://" in err and "of 1.5 s" in err
    assert err.strip().splitlines()[-1].startswith("telegest: ")


def test_a_long_erase_says_so(make_esp_sim, tmp_path, capsys, say_at_once):
    """A chip slow to erase (a real 4 MB one takes 10 to 30 s)."""
    import time

    from tools.sim.esp_rom import ERASE_FLASH

    sim = make_esp_sim()
    real = sim._command

    def slow_erase(op, data, chk):
        if op == ERASE_FLASH:
            time.sleep(1.0)
        return real(op, data, chk)

    sim._command = slow_erase
    img = tmp_path / "mp.bin"
    img.write_bytes(merged())
    assert main(["device", "flash", sim.url, str(img)]) == 0
    err = capsys.readouterr().err
    assert re.search(r"erasing the whole flash \(10 to 30 s\)\.\.\. \d s", err)
    assert err.index("erase ") < err.index("erasing the whole flash") < err.index("write ")
