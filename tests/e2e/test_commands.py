"""The commands a person runs: `telegest up` and `telegest bench ingest`, as subprocesses."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa

from fleet.demo import demo_day
from tests.helpers import ROOT, stored_seqs, wait_until
from tools.broker import free_port

# many processes each (a broker, the API, workers, readers): one at a time (docs/testing.md)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("processes")]


def _up(data, port, mqtt_port, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "up", "--data", str(data), "--port", str(port),
         "--mqtt-port", str(mqtt_port), "--mqtts-port", str(free_port()), "--tap-every",
         "0.5", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped." in out
    return out


def _connack(port, login=None, client_id=""):
    """The broker's answer to a CONNECT (MQTT 3.1.1, as the readers speak)."""
    done, box = threading.Event(), []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv311)
    if login:
        c.username_pw_set(login["username"], login["password"])
    c.on_connect = lambda _c, _u, _f, rc, _p: (box.append(rc), done.set())
    c.connect_async("127.0.0.1", port)
    c.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
        return str(box[0])
    finally:
        c.disconnect()
        c.loop_stop()


def _badge_events(db_url, uid):
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as c:
            return c.execute(sa.text("SELECT count(*) FROM clock_events WHERE badge_uid = :u"),
                             {"u": uid}).scalar()
    finally:
        engine.dispose()


def test_up_runs_everything_authenticated_and_ctrl_c_stops_it_cleanly(tmp_path):
    """With mosquitto, `up` runs the broker as in production: every process and reader logs in
    with its own credentials, an anonymous client is refused, and a reader blocked through the
    API is dropped and refused by the broker. Run again on the same data, it starts afresh."""
    port, mqtt_port, data = free_port(), free_port(), tmp_path / "var"
    db_url = f"sqlite:///{data / 'telegest.db'}"
    proc = _up(data, port, mqtt_port, "--readers", "3")
    try:
        key_file = data / "api-key.txt"
        wait_until(lambda: key_file.exists(), 60, what="the admin key")
        key = key_file.read_text().strip()

        def call(path, body=None):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}",
                                                           "Content-Type": "application/json"},
                data=json.dumps(body).encode() if body is not None else None)
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.load(r)

        wait_until(lambda: _ok(lambda: call("/healthz")), 60, what="the API")
        day = demo_day(datetime.now(timezone.utc)).isoformat()  # the agency's day, in Paris
        # the virtual readers tap every half second: their events reach the API
        events = wait_until(lambda: _ok(lambda: call(f"/api/v1/clock-events?day={day}")
                                        ["items"]), 60, what="clock events from the readers")
        assert {e["method"] for e in events} == {"nfc"}
        assert call(f"/api/v1/visits?day={day}")["items"], "the demo day is planned"

        creds_file = data / "broker-credentials.json"
        assert creds_file.stat().st_mode & 0o777 == 0o600
        creds = json.loads(creds_file.read_text())
        assert _connack(mqtt_port) == "Not authorized", "anonymous clients are refused"
        # the tap topic through the sim-control login; without it, a clear refusal
        tap = [sys.executable, "-m", "tools.cli", "device", "tap", "demo-r2", "04DEADBEEF0001",
               "--broker", f"127.0.0.1:{mqtt_port}"]
        refused = subprocess.run(tap, cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2 and "refused the connection" in refused.stderr
        done = subprocess.run([*tap, "--credentials", str(creds_file)], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        wait_until(lambda: _badge_events(db_url, "04DEADBEEF0001"), 15,
                   what="the tap by hand stored")

        # a reader blocked through the API: dropped, its reconnects refused by the broker
        wait_until(lambda: stored_seqs(db_url, "demo-r1"), 30, what="demo-r1 connected")
        call("/api/v1/devices/demo-r1/block", {"reason": "box stolen"})
        wait_until(lambda: re.search(r"demo-r1: broker \S+ refused the connection: Not "
                                     r"authorized", (data / "logs" / "readers.log").read_text()),
                   15,
                   what="demo-r1 dropped and its reconnect refused")
        assert _connack(mqtt_port, creds["devices"]["demo-r1"], "demo-r1") == "Not authorized"
    finally:
        out = _stop(proc)
    assert "API      http://127.0.0.1:" in out
    assert "authenticated" in out and str(creds_file) in out
    assert not (data / "logs" / "worker.log").read_text().count("Traceback")

    # again on the same data: a new broker, new passwords; the blocked reader stays out
    r2 = len(stored_seqs(db_url, "demo-r2"))
    port, mqtt_port = free_port(), free_port()
    proc = _up(data, port, mqtt_port, "--readers", "3")
    try:
        wait_until(lambda: len(stored_seqs(db_url, "demo-r2")) > r2, 60,
                   what="demo-r2's taps with its new password")
        again = json.loads(creds_file.read_text())
        assert again["devices"]["demo-r2"]["password"] != creds["devices"]["demo-r2"]["password"]
        assert "demo-r1" not in again["devices"]
        assert _connack(mqtt_port, creds["devices"]["demo-r2"], "demo-r2") == "Not authorized"
    finally:
        out = _stop(proc)
    assert "refused  demo-r1 (blocked)" in out


def test_up_with_readers_on_wasm_runs_the_firmware_and_takes_a_tap(tmp_path):
    """`up --readers-on wasm`: the demo readers are virtual boxes running the real firmware,
    logged in with their own credentials; `device tap` lays the card on the box's PN532
    simulator (heard as sim-control) and the firmware's event is stored."""
    port, mqtt_port, data = free_port(), free_port(), tmp_path / "var"
    db_url = f"sqlite:///{data / 'telegest.db'}"
    proc = _up(data, port, mqtt_port, "--readers", "1", "--readers-on", "wasm")
    try:
        creds_file = data / "broker-credentials.json"
        wait_until(lambda: (data / "logs" / "readers.log").exists() and "Ctrl-C stops" in
                   (data / "logs" / "readers.log").read_text(), 90, what="the box running")
        tap = [sys.executable, "-m", "tools.cli", "device", "tap", "demo-r1", "04C0FFEE00AA01",
               "--broker", f"127.0.0.1:{mqtt_port}", "--credentials", str(creds_file)]

        def tapped_and_stored():  # the box may still be joining: tap again until it counts
            subprocess.run(tap, cwd=ROOT, capture_output=True, text=True, timeout=30)
            return _badge_events(db_url, "04C0FFEE00AA01")

        wait_until(tapped_and_stored, 60, interval=2, what="the box's tap stored")
        log = (data / "logs" / "readers.log").read_text()
        assert "on MicroPython (WebAssembly)" in log and "card 04C0FFEE00AA01" in log
    finally:
        _stop(proc)


def test_up_with_the_embedded_broker_says_it_is_anonymous(tmp_path):
    data = tmp_path / "var"
    out = subprocess.run(
        [sys.executable, "-m", "tools.cli", "up", "--data", str(data), "--port",
         str(free_port()), "--mqtt-port", str(free_port()), "--broker", "amqtt",
         "--readers", "1", "--for-seconds", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "amqtt on 127.0.0.1:" in out.stdout and "anonymous" in out.stdout
    assert "--credentials" not in out.stdout
    assert not (data / "broker-credentials.json").exists()


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
