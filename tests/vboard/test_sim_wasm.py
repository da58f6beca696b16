"""`telegest device sim --board wasm`: boxes running the real firmware come up connected to a
real mosquitto, answer `telegest device console`, and a `telegest device tap` is read by the
firmware from the PN532 simulator and published on the device's own topic."""
from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tests.helpers import ROOT, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.virtual_hw, pytest.mark.micropython]


def telegest(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "tools.cli", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def read_lines_until(proc, pattern: str, timeout: float) -> list[str]:
    """The process's output lines up to one matching `pattern` (a thread reads, so a line
    buffered by Python is never missed)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.rstrip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no {pattern!r} from telegest device sim: {seen}")


def test_sim_board_wasm_runs_the_firmware_and_takes_taps(mosquitto):
    broker = f"{mosquitto.host}:{mosquitto.port}"
    heard: list[tuple[str, dict]] = []
    got = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    sub.on_connect = lambda c, *_: c.subscribe("tg/v1/box-1/up/#", qos=1)

    def on_message(_c, _u, msg):
        heard.append((msg.topic, json.loads(msg.payload)))
        got.set()

    sub.on_message = on_message
    sub.connect(mosquitto.host, mosquitto.port)
    sub.loop_start()
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "device", "sim", "--board",
                             "wasm", "--devices", "box-1", "--broker", broker], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = read_lines_until(proc, r"Ctrl-C stops", 120)
        url = re.search(r"box-1: console (socket://\S+)", "\n".join(lines)).group(1)

        def up():
            s = json.loads(telegest("device", "console", url, "status", "--json"))
            return s if s["mqtt"] == "up" else None

        s = wait_until(up, 30, interval=0.5, what="box-1 connected to the broker")
        assert (s["id"], s["wifi"], s["mode"]) == ("box-1", "up", "normal")

        telegest("device", "tap", "box-1", "04A1B2C3D4E5F6", "--broker", broker)
        taps = wait_until(lambda: json.loads(telegest("device", "console", url, "taps",
                                                      "--json"))["taps"], 15, interval=0.5,
                          what="the tap read by the firmware")
        assert taps[-1]["uid"] == "04A1B2C3D4E5F6"
        assert got.wait(15), "the clock event published"
        topic, body = next((t, b) for t, b in heard if t.endswith("/clock"))
        assert topic == "tg/v1/box-1/up/clock"
        assert body["events"][0]["badge"] == "04A1B2C3D4E5F6"
    finally:
        proc.terminate()
        proc.wait(15)
        sub.loop_stop()
        sub.disconnect()
