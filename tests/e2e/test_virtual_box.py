"""Issue 17's proof, with no hardware: the technician's commands against the virtual reader box
(the unmodified firmware on the real MicroPython, tools/vboard --box) and the simulators, and
a tap on the simulated PN532 stored by the fleet through a broker that enforces each device's
login.

    flash (ESP32 ROM simulator) -> deploy -> provision (fleet API + dynsec) -> console status
    -> card on the PN532 simulator -> MQTT with the box's own login -> worker -> database ->
    ack -> the box's journal freed
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.field.test_provision import technician_key
from tests.helpers import (ROOT, find_device_with_visit_now, micropython_image, stored_seqs,
                           wait_until)
from tools.sim.esp_rom import EspRomSim
from tools.sim.pn532 import PN532Sim
from tools.vboard import VirtualBoard, VirtualBoardError

pytestmark = [pytest.mark.e2e, pytest.mark.virtual_hw, pytest.mark.micropython]

WIFI = ("Maison Dupont", 'wi\\fi "maison" l\'été')  # sent exactly, every awkward character


BOXES: list = []  # the running box, whose stderr a failure shows


def telegest(*args: str, env: dict | None = None, timeout: float = 120) -> str:
    proc = subprocess.run([sys.executable, "-m", "tools.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"telegest {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}\n"
                                  f"box: {[b._errors() for b in BOXES]}")
    assert "Traceback" not in proc.stderr
    return proc.stdout


@pytest.fixture
def pn532():
    sim = PN532Sim()
    sim.port = sim.serve_tcp()
    yield sim
    sim.close()


@pytest.fixture
def box(pn532):
    try:
        board = VirtualBoard(box=True, ap=WIFI, uarts={2: ("127.0.0.1", pn532.port)},
                             unique_id="240ac4a1b2c3").start()
    except VirtualBoardError as e:
        pytest.fail(str(e))
    BOXES.append(board)
    yield board
    BOXES.remove(board)
    errors = board._errors()
    board.stop()
    assert "uncaught" not in errors and "netbridge" not in errors, errors


def test_flash_deploy_provision_console_and_a_tap_reaches_the_fleet(
        demo, secured, fleet_api, fleet_worker, pn532, box, tmp_path):
    db_url, _ = demo
    ident, _, (visit_id, badge) = find_device_with_visit_now(db_url)
    timings = {}

    # flash: MicroPython onto the (simulated) ESP32, through its ROM bootloader
    rom = EspRomSim()
    try:
        image = tmp_path / "ESP32_GENERIC.bin"
        image.write_bytes(micropython_image())
        out = telegest("device", "flash", f"socket://127.0.0.1:{rom.serve_tcp()}", str(image))
        assert rom.flash[0x1000:0x1000 + image.stat().st_size] == image.read_bytes()
        assert "verified" in out.lower() or "written" in out.lower(), out
    finally:
        rom.close()

    # deploy: the firmware onto the virtual box (it has MicroPython), then it boots
    t = time.monotonic()
    out = telegest("device", "deploy", box.url)
    assert "deployed firmware" in out
    timings["deploy_s"] = time.monotonic() - t

    t = time.monotonic()
    status = json.loads(telegest("device", "console", box.url, "status", "--json"))
    assert status["mode"] == "normal" and status["wifi"] == "unconfigured"
    assert status["id"] == "tg-240ac4a1b2c3" and status["rd"] == "ok"

    # provision: the fleet registers the box's login with the broker, the box gets it
    key = technician_key(db_url)
    out = telegest("device", "provision", box.url, "--ident", ident, "--fleet", fleet_api,
                   "--api-key", key, "--broker", f"{secured.host}:{secured.port}",
                   "--wifi-ssid", WIFI[0], "--wifi-password", WIFI[1], "--wait", "60")
    assert f"connected to {secured.host}:{secured.port} as {ident}" in out, out
    timings["provision_s"] = time.monotonic() - t

    status = json.loads(telegest("device", "console", box.url, "status", "--json"))
    assert (status["id"], status["wifi"], status["mqtt"]) == (ident, "up", "up")
    assert status["tq"] == "synced" and status["jd"] == 0

    # the fleet pushes the home's planning; then a caregiver's badge on the reader
    wait_until(lambda: json.loads(telegest("device", "console", box.url, "counters", "--json"))
               ["cfg_applied"] >= 1, 30, interval=0.5, what="the planning on the box")
    t = time.monotonic()
    pn532.place_tag(bytes.fromhex(badge))
    wait_until(lambda: stored_seqs(db_url, ident) == [1], 30, what="the tap stored")
    timings["tap_to_stored_s"] = time.monotonic() - t
    pn532.remove_tag()

    # the provisioned box's console is locked: the fleet's one-time code opens it
    out = telegest("fleet", "device", "maintenance-code", ident, "--by", "e2e", "--db", db_url)
    code = out.split(f"maintenance code for {ident}: ")[1].split()[0]
    assert json.loads(telegest("device", "console", box.url, "maint", code, "--json"))[
        "maintenance"] is True
    taps = json.loads(telegest("device", "console", box.url, "taps", "--json"))["taps"]
    assert [(x["uid"], x["fb"]) for x in taps] == [(badge, "in")]

    def journal_freed():
        j = json.loads(telegest("device", "console", box.url, "journal", "--json"))
        return j if j["depth"] == 0 and j["acked"] == 1 else None

    wait_until(journal_freed, 30, interval=0.5, what="the fleet's ack freed the journal")
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        row = c.execute(sa.text(
            "SELECT e.dir, e.visit_id FROM clock_events e JOIN devices d ON d.id = e.device_id "
            "WHERE d.ident = :i"), {"i": ident}).one()
    engine.dispose()
    assert (row.dir, row.visit_id) == ("in", visit_id)
    print("virtual box timings:", json.dumps({k: round(v, 1) for k, v in timings.items()}))
