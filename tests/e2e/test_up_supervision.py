"""Finding "`telegest up` supervises what it starts" (issue #14, item 10).

Before: killing `up`'s Mosquitto (or its worker, or its API) left the whole system dead and
silent: nothing restarted it and nothing said so. Now each part that dies is started again with
backoff, the restart is printed and logged, and a part that keeps dying stops everything with
the reason. The readers' journals make a broker restart lossless.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, stored_seqs, wait_until
from tools.broker import free_port
from tools.errors import TelegestError
from tools.sim.reader import VirtualReader
from tools.sim.run import EMPTY_CONFIG
from tools.up import Children, Supervisor

# many processes each (a broker, the API, workers, readers): one at a time (docs/testing.md)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("processes")]


class Lines:
    """`up`'s output, read as it comes."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.t.start()

    def _read(self, proc) -> None:
        for line in proc.stdout:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def _mosquitto_pid(data: Path) -> int:
    out = subprocess.run(["pgrep", "-f", str(data / "broker" / "mosquitto.conf")],
                         capture_output=True, text=True).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


def test_finding_up_supervises_the_broker_killed_under_up_loses_nothing(tmp_path):
    port, mqtt_port, data = free_port(), free_port(), tmp_path / "var"
    db_url = f"sqlite:///{data / 'telegest.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "up", "--data", str(data), "--port", str(port),
         "--mqtt-port", str(mqtt_port), "--mqtts-port", str(free_port()), "--readers", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Lines(proc)
    readers = []
    try:
        wait_until(lambda: out.has("Ctrl-C stops everything"), 90, what="up started")
        creds = json.loads((data / "broker-credentials.json").read_text())["devices"]
        badge = "04A1B2C3D4E5F6"
        config = dict(EMPTY_CONFIG, badges=[badge])
        for ident in ("demo-r1", "demo-r2", "demo-r3"):
            login = creds[ident]
            readers.append(VirtualReader(ident, "127.0.0.1", mqtt_port, tmp_path / ident,
                                         config, ack_timeout=2.0, username=login["username"],
                                         password=login["password"]).start())
        per_reader = 60
        for i in range(per_reader):
            for r in readers:
                assert r.tap(badge) != "full"
            if i == 20:  # an outage in the middle of the taps
                subprocess.run(["kill", "-9", str(_mosquitto_pid(data))], check=True)
            time.sleep(0.1)
        wait_until(lambda: out.has("broker restarted"), 60, what="the broker restarted")
        for r in readers:
            assert r.wait_drained(120), f"{r.device_id} still holds {r.depth} events"
        for r in readers:  # each tap stored once: 0 lost, 0 duplicated
            assert sorted(stored_seqs(db_url, r.device_id)) == list(range(1, per_reader + 1))
        assert out.has("broker stopped (exit -9): restarting in 1 s")
        assert "broker stopped" in (data / "logs" / "up.log").read_text()
    finally:
        for r in readers:
            r.stop()
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert proc.returncode == 0, "".join(out.lines)[-3000:]


class StandInBroker:
    """Only what the supervisor reads of a Broker: whether it runs."""

    running = True
    proc = None


def test_finding_up_supervises_a_part_that_keeps_dying_stops_everything(tmp_path):
    children = Children(tmp_path)
    children.start("worker", ["this_module_does_not_exist"])
    clock = {"t": 0.0}
    sup = Supervisor(children, StandInBroker(), tmp_path, clock=lambda: clock["t"])
    with pytest.raises(TelegestError, match="worker died 5 times within 60 s"):
        for _ in range(10):
            wait_until(lambda: "worker" in children.dead(), 10, what="the worker exits")
            sup.check()  # its death noted, a restart scheduled after the backoff
            clock["t"] = sup.pending["worker"] + 0.1
            sup.check()  # started again (and dies again at once)
    log = (tmp_path / "up.log").read_text()
    assert "worker stopped (exit 1): restarting in 1 s" in log
    assert "worker stopped (exit 1): restarting in 8 s" in log
    assert log.count("worker restarted") == 4
    children.stop()
