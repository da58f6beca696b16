"""Planning push end to end: real mosquitto, the worker process, virtual readers that start
with an empty planning, the REST API to change the planning, a raw paho subscriber that
counts every config message."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt
import pytest

from tests.helpers import find_device_with_visit_now, wait_until
from tools.sim.reader import VirtualReader
from tools.sim.run import EMPTY_CONFIG

pytestmark = pytest.mark.e2e


class ConfigSpy:
    """Every message on tg/v1/+/down/config/# (manifests and parts, retained ones too)."""

    def __init__(self, broker):
        self.msgs: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="config-spy")
        self.c.on_connect = lambda client, *a: client.subscribe("tg/v1/+/down/config/#", qos=1)
        self.c.on_message = self._on_message
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def _on_message(self, _c, _u, msg):
        with self.lock:
            self.msgs.append((msg.topic, msg.payload))

    def count(self, ident: str) -> int:
        with self.lock:
            return sum(1 for t, _ in self.msgs if t.split("/")[2] == ident)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def empty_reader(ident, broker, tmp_path, start: bool = True) -> VirtualReader:
    r = VirtualReader(ident, broker.host, broker.port, tmp_path / "flash" / ident,
                      dict(EMPTY_CONFIG), ack_timeout=2.0)
    return r.start() if start else r


def test_empty_reader_gets_its_planning_on_connect_and_taps_in(demo, mosquitto, worker,
                                                                tmp_path):
    ident, cfg, (visit_id, badge) = find_device_with_visit_now(demo[0])
    r = empty_reader(ident, mosquitto, tmp_path, start=False)
    assert r.core.planning.version == 0  # before it connects: the retained config is quick
    r.start()
    try:
        wait_until(lambda: r.core.planning.known(badge), 15, what="the planning, retained")
        assert r.core.planning.version >= 1 and r.core.config.applied_count == 1
        assert r.tap(badge) == "in"
        assert r.wait_drained(15)
        assert (tmp_path / "flash" / ident / "config.json").exists()
    finally:
        r.stop()
    # a restart with an empty planning and no broker keeps the saved one
    again = VirtualReader(ident, "127.0.0.1", 1, tmp_path / "flash" / ident, dict(EMPTY_CONFIG))
    assert again.core.planning.known(badge)


def _visit_of(api, ident):
    """The latest planned visit at this reader's home."""
    client = api.get(f"/api/v1/devices/{ident}").json()["client_id"]
    res = api.get("/api/v1/visits", params={"client_id": client, "limit": 500})
    assert res.status_code == 200, res.text
    return res.json()["items"][-1]


def test_planning_changes_reach_only_the_readers_concerned(demo, mosquitto, worker, api,
                                                            tmp_path):
    spy = ConfigSpy(mosquitto)
    readers = {i: empty_reader(i, mosquitto, tmp_path) for i in ("demo-r1", "demo-r2")}
    try:
        for r in readers.values():
            wait_until(lambda r=r: r.core.planning.version >= 1, 15, what="first planning")
        v1 = {i: r.core.planning.version for i, r in readers.items()}
        time.sleep(2.5)  # a few polls of the pusher: nothing unchanged is sent again
        before = {i: spy.count(i) for i in readers}
        assert all(before.values())
        time.sleep(2.5)
        assert {i: spy.count(i) for i in readers} == before

        # PATCH the time of a visit at demo-r2's home: demo-r2 only
        v = _visit_of(api, "demo-r2")
        start = datetime.fromisoformat(v["planned_start"]) + timedelta(minutes=20)
        end = datetime.fromisoformat(v["planned_end"]) + timedelta(minutes=20)
        t0 = time.monotonic()
        res = api.patch(f"/api/v1/visits/{v['id']}", json={"planned_start": start.isoformat(),
                                                     "planned_end": end.isoformat()})
        assert res.status_code == 200, res.text
        r2 = readers["demo-r2"]
        wait_until(lambda: r2.core.planning.version > v1["demo-r2"], 10, what="the new planning")
        took = time.monotonic() - t0
        assert r2.core.planning.visit_end(v["id"]) == int(end.timestamp())
        time.sleep(1.5)
        assert readers["demo-r1"].core.planning.version == v1["demo-r1"]
        assert spy.count("demo-r1") == before["demo-r1"]  # nothing republished to demo-r1
        assert took < 10

        # a new caregiver with a new card, and a visit for them at demo-r1's home
        org = api.get("/api/v1/organisations").json()["items"][0]["id"]
        g = api.post("/api/v1/caregivers", json={"organisation_id": org, "name": "Chloé Nouvelle"})
        assert g.status_code == 201, g.text
        card = api.post("/api/v1/badges", json={"kind": "caregiver_card", "uid": "04CC00000000AA",
                                         "caregiver_id": g.json()["id"]})
        assert card.status_code == 201, card.text
        client = api.get("/api/v1/devices/demo-r1").json()["client_id"]
        now = datetime.now(timezone.utc).replace(microsecond=0)
        res = api.post("/api/v1/visits", json={"client_id": client, "caregiver_id": g.json()["id"],
                                        "planned_start": (now + timedelta(minutes=5)).isoformat(),
                                        "planned_end": (now + timedelta(minutes=65)).isoformat()})
        assert res.status_code == 201, res.text
        r1 = readers["demo-r1"]
        wait_until(lambda: r1.core.planning.known("04CC00000000AA"), 10, what="the new card")
        assert r1.tap("04CC00000000AA") == "in"
        v2 = r2.core.planning.version
        n2 = spy.count("demo-r2")
        time.sleep(1.5)
        assert r2.core.planning.version == v2 and spy.count("demo-r2") == n2
    finally:
        for r in readers.values():
            r.stop()
        spy.stop()


def test_bench_push_prints_one_json_object(capsys, tmp_path):
    import json
    from types import SimpleNamespace

    from tools.bench.push import run_bench_push

    assert run_bench_push(SimpleNamespace(devices=50, visits=4, db=None)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    r = json.loads(out[0])
    assert r["devices"] == 50 and r["pushed"] == 50 and r["messages"] >= 50
    assert r["bytes"] > 0 and r["push_all_s"] > 0
