"""Two identical worker processes on a real mosquitto: one holds the fleet-duties lease and is
the only one to push plannings (each config version is published once, not once per worker);
SIGKILL it, and the other takes the lease over and pushes the next planning change."""
from __future__ import annotations

import ast
import json
from datetime import datetime, timedelta

import pytest

from tests.helpers import WorkerProcess, wait_until
from tests.push.test_push_e2e import ConfigSpy, empty_reader

pytestmark = pytest.mark.e2e

TTL_S = 3  # short for the test; 15 s by default
LEADS = "holds the lease 'fleet-duties'"


def _manifest_versions(spy: ConfigSpy) -> dict[str, list[int]]:
    """Per device, the versions of the config manifests seen, in order."""
    with spy.lock:
        msgs = list(spy.msgs)
    out: dict[str, list[int]] = {}
    for topic, payload in msgs:
        if topic.endswith("/down/config"):
            out.setdefault(topic.split("/")[2], []).append(json.loads(payload)["v"])
    return out


def _stopped_counters(worker: WorkerProcess) -> dict:
    """The counters the worker logs when it stops (SIGTERM)."""
    line = [ln for ln in worker.log().splitlines() if " stopped: {" in ln][-1]
    return ast.literal_eval(line.split(" stopped: ", 1)[1])


def _move_visit(api, ident: str, minutes: int) -> tuple[int, int]:
    """Move the latest visit at this reader's home; (visit id, its new end as a timestamp)."""
    client = api.get(f"/api/v1/devices/{ident}").json()["client_id"]
    v = api.get("/api/v1/visits", params={"client_id": client, "limit": 500}).json()["items"][-1]
    start = datetime.fromisoformat(v["planned_start"]) + timedelta(minutes=minutes)
    end = datetime.fromisoformat(v["planned_end"]) + timedelta(minutes=minutes)
    res = api.patch(f"/api/v1/visits/{v['id']}", json={"planned_start": start.isoformat(),
                                                     "planned_end": end.isoformat()})
    assert res.status_code == 200, res.text
    return v["id"], int(end.timestamp())


def test_one_leader_pushes_and_the_other_takes_over_when_it_is_killed(
        demo, mosquitto, api, tmp_path, monkeypatch):
    monkeypatch.setenv("TELEGEST_LEASE_TTL_S", str(TTL_S))  # the workers inherit it
    spy = ConfigSpy(mosquitto)  # before the workers: every config message is seen live
    workers = [WorkerProcess(demo[0], mosquitto.host, mosquitto.port,
                             tmp_path / f"worker{i}.log") for i in (1, 2)]
    reader = None
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready()
        leaders = wait_until(lambda: [w for w in workers if LEADS in w.log()], 10,
                             what="a leader")
        assert len(leaders) == 1, [w.log()[-1500:] for w in workers]
        leader, follower = leaders[0], next(w for w in workers if w is not leaders[0])
        wait_until(lambda: "follower: lease 'fleet-duties'" in follower.log(), 10,
                   what="the other worker to follow")

        reader = empty_reader("demo-r2", mosquitto, tmp_path)
        wait_until(lambda: reader.core.planning.version >= 1, 15, what="the first planning")
        v1 = reader.core.planning.version
        visit, end = _move_visit(api, "demo-r2", 20)
        wait_until(lambda: reader.core.planning.version > v1, 10, what="the moved visit")
        assert reader.core.planning.visit_end(visit) == end

        leader.kill()
        before = sum(len(vs) for vs in _manifest_versions(spy).values())
        wait_until(lambda: LEADS in follower.log(), 4 * TTL_S, what="the follower to lead")
        assert follower.alive()
        v2 = reader.core.planning.version
        visit, end = _move_visit(api, "demo-r2", 40)
        wait_until(lambda: reader.core.planning.version > v2, 10,
                   what="a planning change pushed by the new leader")
        assert reader.core.planning.visit_end(visit) == end

        # one pusher at a time: no config version was ever published twice, and the follower
        # published nothing before it led
        follower.stop()
        seen = _manifest_versions(spy)
        assert _stopped_counters(follower)["configs_pushed"] == \
            sum(len(vs) for vs in seen.values()) - before
        assert len(seen) >= 5 and seen["demo-r2"][-1] == reader.core.planning.version
        assert {d: vs for d, vs in seen.items() if len(vs) != len(set(vs))} == {}
        assert all(vs == sorted(vs) for vs in seen.values()), seen
    finally:
        if reader is not None:
            reader.stop()
        for w in workers:
            w.stop()
        spy.stop()
