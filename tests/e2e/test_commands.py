"""The commands a person runs: `telegest up` and `telegest bench ingest`, as subprocesses."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers import ROOT, wait_until
from tools.broker import free_port

pytestmark = pytest.mark.e2e


def test_up_runs_everything_and_ctrl_c_stops_it_cleanly(tmp_path):
    port, mqtt_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "up", "--data", str(tmp_path / "var"), "--port",
         str(port), "--mqtt-port", str(mqtt_port), "--readers", "3", "--tap-every", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        key_file = tmp_path / "var" / "api-key.txt"
        wait_until(lambda: key_file.exists(), 60, what="the admin key")
        key = key_file.read_text().strip()

        def get(path):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.load(r)

        wait_until(lambda: _ok(lambda: get("/healthz")), 60, what="the API")
        day = time.strftime("%Y-%m-%d")
        # the virtual readers tap every half second: their events reach the API
        events = wait_until(lambda: _ok(lambda: get(f"/api/v1/clock-events?day={day}")
                                        ["items"]), 60, what="clock events from the readers")
        assert {e["method"] for e in events} == {"nfc"}
        assert get(f"/api/v1/visits?day={day}")["items"], "the demo day is planned"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "API      http://127.0.0.1:" in out and "stopped." in out
    assert not (tmp_path / "var" / "logs" / "worker.log").read_text().count("Traceback")


def _ok(fn):
    try:
        return fn()
    except OSError:
        return None


def test_bench_ingest_prints_one_json_object_with_nothing_lost():
    out = subprocess.run([sys.executable, "-m", "tools.cli", "bench", "ingest", "--json",
                          "--events", "2000", "--devices", "5", "--per-message", "4"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("events_per_s", "raw_paho_per_s", "ratio", "lost", "duplicated"):
        assert key in result
    assert (result["lost"], result["duplicated"], result["all_acked"]) == (0, 0, True)
    assert result["events"] == 2000
