"""docs/technician.md walked through as written: every `$ telegest …` line of its examples and
every console command of its step 5 runs, in the guide's order, against the simulators and
the virtual reader box (docs/technician.md, "Trying it without hardware"), with only the
substitutions listed in SUBSTITUTIONS, which the guide lists too. A command that fails, prints
a traceback or is missing from the guide fails the test."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.field.test_provision import client_id, technician_key
from tests.helpers import ROOT, micropython_image, stored_seqs, wait_until
from tools.sim.esp_rom import EspRomSim
from tools.sim.ntag424 import Ntag424
from tools.sim.pn532 import PN532Sim
from tools.vboard import VirtualBoard, VirtualBoardError

pytestmark = [pytest.mark.e2e, pytest.mark.virtual_hw, pytest.mark.micropython]

GUIDE = ROOT / "docs" / "technician.md"
HOME_WIFI = ("Maison Durand", "the password")  # the guide's own examples, as the virtual AP


def guide_commands() -> list[str]:
    """In the guide's order: the `$ telegest …` lines of its code blocks (continuations
    joined), and the console commands of step 5's list as `telegest device console PORT …`
    and its inline `telegest device console PORT …` examples (a `set` command named again in
    the same item, like "after `broker set id`", is a mention, not a second command)."""
    text = GUIDE.read_text()
    found: list[tuple[int, str]] = []
    for m in re.finditer(r"```[^\n]*\n(.*?)```", text, re.S):
        lines = m.group(1).splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith("$ "):
                cmd = lines[i][2:]
                while cmd.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd = cmd.rstrip()[:-1] + " " + lines[i].strip()
                found.append((m.start(1) + i, " ".join(cmd.split("  #")[0].split())))
            i += 1
    start = text.index("## 5. Check the reader")
    step5 = text[start:text.index("\n## ", start + 1)]
    for item in re.finditer(r"^\d+\. (.*?)(?=^\d+\. |^\|)", step5, re.S | re.M):
        seen: list[str] = []
        for cmd in re.findall(r"`((?:selftest|wifi|broker|status|taps|journal|reboot|maint)"
                              r"(?: [^`]*)?)`", item.group(1)):
            if " set " in cmd + " " and any(s.startswith(cmd + " ") for s in seen):
                continue
            seen.append(cmd)
            found.append((start + item.start(), f"telegest device console /dev/ttyUSB0 {cmd}"))
    for m in re.finditer(r"`telegest device console (?:PORT|/dev/ttyUSB0) ([^`]+)`", step5):
        found.append((start + m.start(), f"telegest device console /dev/ttyUSB0 {m.group(1)}"))
    return [c for _, c in sorted(found, key=lambda x: x[0])]


def test_the_guide_lists_the_commands_this_test_runs():
    cmds = guide_commands()
    for needed in ("telegest device ports", "telegest device flash", "telegest device deploy",
                   "telegest device provision", "telegest device console /dev/ttyUSB0 selftest",
                   "telegest fleet badge issue", "telegest badge write", "telegest badge read",
                   "telegest badge sheet", "telegest device console /dev/ttyUSB0 status"):
        assert any(c.startswith(needed) for c in cmds), needed


@pytest.fixture
def rig(demo, secured, fleet_api, fleet_worker, tmp_path):
    """The simulators and the box, and the substitutions that point the guide at them."""
    db_url, _ = demo
    rom = EspRomSim()
    rom_url = f"socket://127.0.0.1:{rom.serve_tcp()}"
    box_pn532 = PN532Sim()
    box_pn532_port = box_pn532.serve_tcp()
    desk_pn532 = PN532Sim(tag=(bytes.fromhex("04A1B2C3D4E5F6"), None))  # the laptop's reader
    desk_url = f"socket://127.0.0.1:{desk_pn532.serve_tcp()}"
    try:
        box = VirtualBoard(box=True, ap=HOME_WIFI, uarts={2: ("127.0.0.1", box_pn532_port)},
                           unique_id="240ac4000042").start()
    except VirtualBoardError as e:
        pytest.fail(str(e))
    work = tmp_path / "laptop"
    work.mkdir()
    (work / "ESP32_GENERIC-v1.27.0.bin").write_bytes(micropython_image())
    (work / "clients.csv").write_text("name,token\nM. Martin,C1-BBBB\n")
    cid = client_id(db_url)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TELEGEST_DATABASE_URL=db_url,
               TELEGEST_API_KEY=technician_key(db_url))
    # What the guide names and the test rig has elsewhere; each one is said in the guide.
    subs = {
        "flash": [("/dev/ttyUSB0", rom_url)],  # the ROM simulator, not the box: a box
        # running MicroPython has left its bootloader
        # the virtual box's MicroPython has no ssl module: no CA, the broker's plain port (the
        # guide says so; TLS is tested with the CPython reader, tests/e2e/test_tls.py)
        "provision": [(" --ca ca.pem", "")],
        "*": [("/dev/ttyUSB0", box.url), ("/dev/ttyUSB1", desk_url),
              ("https://fleet.agency.example", fleet_api),
              ("mqtt.agency.example:8883", f"{secured.host}:{secured.port}"),
              ("mqtt.example.org", secured.host), ("broker set port 8883",
                                                   f"broker set port {secured.port}"),
              ("--client-id 17", f"--client-id {cid}"), ("--client-id 12", f"--client-id {cid}"),
              ("'…'", shlex.quote(HOME_WIFI[1])), ("<device id>", "r-0042")],
    }
    yield {"env": env, "cwd": work, "subs": subs, "box": box, "rom": rom, "db": db_url,
           "box_pn532": box_pn532, "desk_pn532": desk_pn532}
    errors = box._errors()
    box.stop()
    rom.close()
    box_pn532.close()
    desk_pn532.close()
    assert "uncaught" not in errors and "netbridge" not in errors, errors


def substitute(cmd: str, subs: dict, token: str | None) -> str:
    for old, new in subs.get(cmd.split()[2] if len(cmd.split()) > 2 else "", []) + subs["*"]:
        cmd = cmd.replace(old, new)
    if token:  # the guide's example token -> the one the fleet just signed
        cmd = re.sub(r"TG1\.[0-9A-Z.]+", token, cmd)
    return cmd


def run(cmd: str, rig) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(cmd)
    assert argv[0] == "telegest", cmd
    return subprocess.run([sys.executable, "-m", "tools.cli", *argv[1:]], cwd=rig["cwd"],
                          env=rig["env"], capture_output=True, text=True, timeout=180)


def test_every_command_of_the_technician_guide_runs_as_written(rig):
    token = None
    ran: list[str] = []
    for written in guide_commands():
        if written.startswith("export "):
            continue  # TELEGEST_API_KEY is in the environment of every command (rig)
        if " broker set user " in written or " broker set password " in written:
            # The values are the box's own login, which provision wrote and nobody may see
            # (the guide's `…`): writing anything else would cut the box off.
            continue
        cmd = substitute(written, rig["subs"], token)
        if " maint " in cmd:  # a fresh code from the fleet: a code works once
            cmd = re.sub(r"maint \S+$", f"maint {maintenance_code(rig)}", cmd)
        if "--ntag424" in written:  # step 6's NTAG 424 DNA: a blank one on the laptop's reader
            rig["desk_pn532"].place_ntag424(Ntag424(bytes.fromhex("04DE5F1EACC040")))
        up_before = _status(rig)["up"] + 1 if written.endswith(" reboot") else 0
        p = run(cmd, rig)
        if "--ntag424" in written:  # back to the NTAG21x the other badge steps write
            rig["desk_pn532"].place_tag(bytes.fromhex("04A1B2C3D4E5F6"))
        assert "Traceback" not in p.stderr, f"{cmd}\n{p.stderr}"
        assert p.returncode == 0, (f"{written}\n-> {cmd}\n{p.stdout}\n{p.stderr}\n"
                                   f"box: {rig['box']._errors()}")
        ran.append(written)
        if written.startswith("telegest fleet badge issue"):
            token = json.loads(p.stdout)["uid"]
            assert token.startswith("TG1.")
            assert (rig["cwd"] / "durand.pdf").stat().st_size > 1000
        if written.startswith("telegest device provision"):
            assert "connected to" in p.stdout and "as r-0042" in p.stdout, p.stdout
        if written.endswith(" reboot"):
            # the reset comes half a second after the answer: wait until the box answers
            # again from its new boot (a `maint` before the reset would be lost with it). Not
            # for its MQTT link: the guide's third quick reboot is a safe boot (BootGuard)
            wait_until(lambda: _status(rig).get("up", up_before) < up_before, 30,
                       interval=0.3, what="the box back after reboot")
        if written.endswith(" taps"):
            # step 5.5: "Tap a caregiver's card, then `taps` shows it"
            rig["box_pn532"].place_tag(bytes.fromhex("04C0FFEE000001"))
            wait_until(lambda: stored_seqs(rig["db"], "r-0042") == [1], 30,
                       what="the tap stored by the fleet")
            rig["box_pn532"].remove_tag()
            taps = json.loads(run(substitute(written + " --json", rig["subs"], None),
                                  rig).stdout)["taps"]
            assert taps[-1]["uid"] == "04C0FFEE000001"
    assert any(c.startswith("telegest badge write") for c in ran) and token
    status = json.loads(run(f"telegest device console {rig['box'].url} status --json",
                            rig).stdout)
    assert (status["id"], status["wifi"], status["mqtt"], status["jd"]) == ("r-0042", "up",
                                                                            "up", 0)
    assert (rig["cwd"] / "badges.pdf").stat().st_size > 1000


def _status(rig) -> dict:
    p = run(f"telegest device console {rig['box'].url} status --json", rig)
    return json.loads(p.stdout) if p.returncode == 0 else {}


def maintenance_code(rig) -> str:
    """A fresh code, once the box has the time to check it (NTP after a reboot)."""
    wait_until(lambda: _status(rig).get("tq") == "synced", 30, interval=0.5,
               what="the box's clock synced")
    p = run("telegest fleet device maintenance-code r-0042 --by walkthrough", rig)
    assert p.returncode == 0, p.stdout + p.stderr
    return re.search(r"maintenance code for r-0042: (\S+)", p.stdout).group(1)


def test_guide_mentions_every_substitution():
    text = GUIDE.read_text().split("## Trying it without hardware", 1)[1]
    for placeholder in ("/dev/ttyUSB0", "/dev/ttyUSB1", "fleet.agency.example",
                        "mqtt.agency.example:8883", "--client-id", "broker set user",
                        "7K2M9X-AB3QRT-0WZ4HN", "maint <code>"):
        assert placeholder in text, placeholder
    assert Path(GUIDE).read_text().count("Maison Durand") >= 2
