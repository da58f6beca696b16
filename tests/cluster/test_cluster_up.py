"""`telegest cluster up`: three nodes, two workers in NATS mode, the API and readers spread
over the nodes; the readers' taps are stored once each; a block from the API refuses the
reader on every node; Ctrl-C leaves no process behind."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import ROOT, wait_until
from tools.broker import free_port, port_free
from tools.cluster import mqtt_probe

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.xdist_group("processes")]


def _probe(address, login) -> int | None:
    """The CONNACK's code, None while the node closes logins it cannot make a session for
    (JetStream electing leaders after a node's loss)."""
    try:
        return mqtt_probe(*address, login)
    except OSError:
        return None


def _stored(db_url: str) -> tuple[int, int, int]:
    """(rows, distinct (device, seq), devices) of the clock events stored."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as c:
            return tuple(c.execute(sa.text(
                "SELECT count(*), count(DISTINCT device_id || '-' || CAST(seq AS TEXT)), "
                "count(DISTINCT device_id) FROM clock_events")).one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_cluster_up_runs_the_fleet_on_three_nodes(tmp_path, backend, request):
    data, port = tmp_path / "data", free_port()
    data.mkdir()
    db_url = (request.getfixturevalue("pg_database_url") if backend == "postgres"
              else f"sqlite:///{data / 'telegest.db'}")
    out = open(tmp_path / "out.txt", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "cluster", "up", "--nodes", "3", "--data", str(data),
         "--port", str(port), "--readers", "3", "--tap-every", "1", "--workers", "2",
         "--database-url", db_url], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    text = lambda: (tmp_path / "out.txt").read_text()  # noqa: E731
    pids: list[int] = []
    try:
        wait_until(lambda: "Ctrl-C stops everything." in text() or proc.poll() is not None,
                   180, interval=0.5, what="cluster up ready")
        assert proc.poll() is None, text()
        creds = json.loads((data / "broker-credentials.json").read_text())
        mqtt = [(a.split(":")[0], int(a.split(":")[1])) for a in creds["broker"].split(",")]
        assert len(mqtt) == 3 and len(creds["nats"].split(",")) == 3
        assert set(creds["devices"]) == {"demo-r1", "demo-r2", "demo-r3"}
        pids = [int((data / "nats" / f"node{i}" / "nats.pid").read_text()) for i in range(3)]

        # the readers tap on their own; both workers store, each event once
        wait_until(lambda: _stored(db_url)[2] == 3 and _stored(db_url)[0] >= 6, 120,
                   interval=1, what="taps of the 3 readers stored")
        rows, distinct, _ = _stored(db_url)
        assert rows == distinct
        logs = {w: (data / "logs" / f"{w}.log").read_text() for w in ("worker-1", "worker-2")}
        assert all("JetStream" in log for log in logs.values()), logs

        # a block from the API: the reader's login is refused by every node at once
        key = (data / "api-key.txt").read_text().strip()
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/devices/demo-r2/block",
                       headers={"Authorization": f"Bearer {key}"}, json={"reason": "stolen"},
                       timeout=60)
        assert r.status_code == 200, r.text
        login = creds["devices"]["demo-r2"]
        for host, p in mqtt:
            assert mqtt_probe(host, p, (login["username"], login["password"])) == 5
        ok = creds["devices"]["demo-r1"]
        assert mqtt_probe(*mqtt[1], (ok["username"], ok["password"])) == 0

        # a node that dies is started again by the supervisor, with the users file as it is
        os.kill(pids[1], signal.SIGKILL)
        wait_until(lambda: "restarted" in text(), 60, interval=0.5, what="the node restarted")
        new = int((data / "nats" / "node1" / "nats.pid").read_text())
        assert new != pids[1]
        pids.append(new)
        assert mqtt_probe(*mqtt[1], (login["username"], login["password"])) == 5
        wait_until(lambda: _probe(mqtt[1], (ok["username"], ok["password"])) == 0, 60,
                   interval=0.5, what="the readers' logins on the restarted node")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert "stopped." in text()
    time.sleep(0.5)
    for pid in pids:  # no node left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert port_free("127.0.0.1", port)
    assert not re.search(r"Traceback", text())
