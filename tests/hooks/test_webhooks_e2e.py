"""End to end: the worker as a process on a real mosquitto (its outbox dispatcher), the API,
and an HTTP endpoint this test starts. A visit modified through the API reaches the endpoint as
a signed webhook; with the endpoint down (connections refused) the next changes wait, then all
arrive in order once it is back, none lost, none twice. And `telegest fleet api` as a user runs
it refuses the fourth call of a key with a quota of 3, with Retry-After."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet.api.app import create_app
from fleet.config import Settings
from fleet.models import Outbox, Visit
from tests.helpers import WorkerProcess, telegest, wait_until

pytestmark = pytest.mark.e2e


def test_signed_webhooks_in_order_across_an_endpoint_outage(demo, mosquitto, receiver,
                                                            tmp_path):
    db_url, info = demo
    app = create_app(Settings(database_url=db_url))
    key = telegest("fleet", "apikey", "add", "--db", db_url, "--role", "manager",
                   "--org", str(info["organisation_id"])).stdout.strip()
    worker = WorkerProcess(db_url, mosquitto.host, mosquitto.port, tmp_path / "worker.log",
                           env={"TELEGEST_OUTBOX_POLL_S": "1", "TELEGEST_OUTBOX_BACKOFF_S": "1"})
    with TestClient(app) as api:
        api.headers["Authorization"] = f"Bearer {key}"
        hook = api.post("/api/v1/webhooks", json={
            "url": receiver.url, "events": ["visit.modified", "visit.cancelled"]}).json()
        secret = hook["secret"]
        with app.state.sessions() as s:
            visit = s.scalars(select(Visit).order_by(Visit.id)).first()
        try:
            worker.start().wait_ready()
            r = api.patch(f"/api/v1/visits/{visit.id}",
                          json={"planned_end": "2030-01-02T10:00:00Z"})
            assert r.status_code == 200, r.text
            (first,) = wait_until(lambda: receiver.events(secret), 30, what="the webhook")
            assert first["type"] == "visit.modified"
            assert first["data"]["visit_id"] == visit.id
            assert first["data"]["planned_end"] == "2030-01-02T10:00:00+00:00"
            assert first["data"]["changed"] == ["planned_end"]

            receiver.stop()  # down: connections refused
            ends = [f"2030-01-02T10:{m:02d}:00+00:00" for m in (5, 10, 15, 20)]
            for end in ends:
                assert api.patch(f"/api/v1/visits/{visit.id}",
                                 json={"planned_end": end}).status_code == 200
            assert api.patch(f"/api/v1/visits/{visit.id}",
                             json={"status": "cancelled"}).status_code == 200

            def refused_twice() -> bool:
                with app.state.sessions() as s:
                    head = s.scalars(select(Outbox).where(Outbox.channel == "webhook",
                                                          Outbox.state == "pending")
                                     .order_by(Outbox.id)).first()
                    return head is not None and head.attempts >= 2 and \
                        "Connection refused" in (head.last_error or "")
            wait_until(refused_twice, 30, what="the endpoint to be tried and refused twice")
            assert len(receiver.received) == 1

            receiver.start()  # back up on the same port
            got = wait_until(lambda: (e := receiver.events(secret)) and len(e) >= 6 and e, 60,
                             what="the waiting deliveries")
        finally:
            worker.stop()
    assert [e["data"]["planned_end"] for e in got[1:5]] == ends
    assert [e["type"] for e in got] == ["visit.modified"] * 5 + ["visit.cancelled"]
    assert len({e["id"] for e in got}) == 6 == len(got)  # none twice
    with app.state.sessions() as s:
        rows = s.scalars(select(Outbox).where(Outbox.channel == "webhook")).all()
        assert [r.state for r in rows] == ["sent"] * 6


def test_a_key_with_quota_3_gets_429_on_its_fourth_call(demo, api_server):
    db_url, info = demo
    made = telegest("fleet", "apikey", "add", "--db", db_url, "--role", "manager",
                    "--org", str(info["organisation_id"]), "--quota", "3")
    key = made.stdout.strip()
    answers = []
    for _ in range(4):
        request = urllib.request.Request(f"{api_server}/api/v1/visits",
                                         headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                answers.append((r.status, r.headers, json.loads(r.read())))
        except urllib.error.HTTPError as e:
            answers.append((e.code, e.headers, json.loads(e.read())))
    assert [a[0] for a in answers] == [200, 200, 200, 429]
    assert [a[1]["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    status, headers, body = answers[3]
    assert headers["X-RateLimit-Limit"] == "3"
    assert 1 <= int(headers["Retry-After"]) <= 86400
    assert int(headers["X-RateLimit-Reset"]) > 0
    assert "daily quota of 3 calls" in body["detail"]
