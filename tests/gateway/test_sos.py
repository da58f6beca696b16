"""SOS from a phone through the gateway (fleet.sos): stored once however often it is resent,
with who, when, the visit planned now and the position; e-mailed to the on-call list through
the outbox; refused from a blocked phone (which is still told to erase itself); listed and
acknowledged through /api/v1/sos (audited, pushed to the caregiver); Web Push subscriptions."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet.db import make_engine, session_factory
from fleet.models import AuditLog, Outbox, PushSubscription, SosAlert
from fleet.sos import describe as sos_text
from tests.gateway.conftest import basic, enrol_phone
from tests.push_service import PushService

ONCALL = ["astreinte@agence-demo.fr", "cadre@agence-demo.fr"]


@pytest.fixture(autouse=True)
def _plain_http_push(monkeypatch):
    monkeypatch.setenv("TELEGEST_WEBPUSH_ALLOW_HTTP", "1")  # the test's push service


@pytest.fixture
def db(demo):
    engine = make_engine(demo[0])
    yield session_factory(engine)
    engine.dispose()


def agency_settings(api, **changes):
    org_id = api.get("/api/v1/organisations").json()["items"][0]["id"]
    return api.patch("/api/v1/alert-settings", json=changes,
                     params={"organisation_id": org_id})


def sos(uid: str = "sos-0001-abcd", **kw) -> dict:
    return {"id": uid, "ts": int(time.time()), "pos": [48.85661, 2.35222, 12], **kw}


def test_an_sos_is_stored_once_with_the_visit_and_mailed_to_the_oncall_list(phone, fleet_api,
                                                                           db):
    r = agency_settings(fleet_api, oncall_emails=ONCALL, sos_number="+33 6 12 34 56 78")
    assert r.status_code == 200 and r.json()["sos_number"] == "+33 6 12 34 56 78"
    r = phone.post("/sos", json=sos(visit=phone.visit_id))  # the app names its visit
    assert r.status_code == 200, r.text
    assert r.json()["stored"] is True and r.json()["new"] is True
    assert r.headers["Cache-Control"] == "no-store"
    again = phone.post("/sos", json=sos(pos=None))  # a resend: the same SOS, not a second
    assert again.json() == {**r.json(), "new": False}
    with db() as s:
        (alert,) = s.scalars(select(SosAlert)).all()
        assert (alert.source, alert.visit_id, alert.client_id, alert.caregiver_id) == (
            "phone", phone.visit_id, phone.client_id, phone.caregiver_id)
        assert (alert.lat, alert.lon, alert.accuracy_m) == (48.85661, 2.35222, 12)
        mails = s.scalars(select(Outbox).where(Outbox.channel == "email")).all()
        assert sorted(m.recipient for m in mails) == sorted(ONCALL), "one e-mail per address"
        body = mails[0].body
        assert "Alice Martin" in body and "Mme Jeanne Durand" in body
        assert "48.85661, 2.35222 (± 12 m)" in body and "openstreetmap.org" in body
        assert s.scalar(select(AuditLog).where(AuditLog.action == "sos")).target == \
            f"sos:{alert.id}"
    state = phone.get("/sos").json()
    assert state["number"] == "+33 6 12 34 56 78" and len(state["push_key"]) == 87
    assert state["alerts"] == [{"id": "sos-0001-abcd", "stored": True,
                                "acknowledged_at": None, "acknowledged_by": None}]


def test_without_a_visit_now_the_last_one_is_named(fleet_api, db):
    r = fleet_api.post("/api/v1/caregivers", json={"name": "Bruno Seul", "organisation_id": (
        fleet_api.get("/api/v1/organisations").json()["items"][0]["id"])})
    assert r.status_code == 201, r.text
    phone = enrol_phone(fleet_api, "phone-bruno", caregiver="Bruno Seul")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    r = fleet_api.patch(f"/api/v1/visits/{phone.visit_id}", json={
        "planned_start": (now - timedelta(hours=3)).isoformat(),
        "planned_end": (now - timedelta(hours=2)).isoformat()})
    assert r.status_code == 200, r.text
    assert phone.post("/sos", json=sos()).status_code == 200
    with db() as s:
        alert = s.scalars(select(SosAlert)).one()
        assert (alert.visit_id, alert.client_id) == (phone.visit_id, phone.client_id)
        text = sos_text(s, alert)
    assert "(dernière · last)" in text["visit"] and text["address"]


def test_a_blocked_phones_sos_is_refused_and_the_phone_erased(phone, fleet_api, db):
    fleet_api.post(f"/api/v1/devices/{phone.ident}/block", json={"reason": "stolen"})
    r = phone.post("/sos", json=sos())
    assert r.status_code == 403 and r.json()["error"] == "blocked" and r.json()["wipe"]
    assert r.headers["Clear-Site-Data"] == '"storage"'
    with db() as s:
        assert s.scalars(select(SosAlert)).all() == []
    cmds = fleet_api.get(f"/api/v1/devices/{phone.ident}/commands").json()["items"]
    assert cmds[0]["kind"] == "wipe" and cmds[0]["state"] == "sent"
    assert fleet_api.post("/gw/v1/sos", json=sos(),
                          headers=basic(phone.ident, "guess")).status_code == 401


@pytest.mark.parametrize("bad", [
    {"id": "short"}, {"id": "has spaces in it"}, {"pos": [91, 0, 5]}, {"pos": [0, 0]},
    {"pos": [0, 0, -1]}, {"ts": -5}, {"visit": 0}])
def test_a_malformed_sos_is_a_clear_422(phone, bad):
    r = phone.post("/sos", json={**sos(), **bad})
    assert r.status_code == 422, r.text


def test_api_lists_and_acknowledges_with_audit_and_a_push(phone, fleet_api, db):
    push = PushService().start()
    try:
        r = phone.post("/push", json=push.subscription())
        assert r.status_code == 200 and r.json() == {"subscribed": True}
        phone.post("/sos", json=sos(visit=phone.visit_id))
        listed = fleet_api.get("/api/v1/sos", params={"state": "open"}).json()
        (item,) = listed["items"]
        assert item["who"] == "Alice Martin" and item["client"] == "Mme Jeanne Durand"
        assert item["acknowledged_at"] is None and item["lat"] == 48.85661
        tech = fleet_api.keys["technician"]
        assert fleet_api.get("/api/v1/sos", headers={
            "Authorization": f"Bearer {tech}"}).status_code == 403
        r = fleet_api.post(f"/api/v1/sos/{item['id']}/ack")
        assert r.status_code == 200 and r.json()["acknowledged_who"].startswith("api_key:")
        first = r.json()["acknowledged_at"]
        assert fleet_api.post(f"/api/v1/sos/{item['id']}/ack").json()["acknowledged_at"] == \
            first, "the first acknowledgement stays"
        assert fleet_api.get("/api/v1/sos", params={"state": "open"}).json()["items"] == []
        assert fleet_api.get("/api/v1/sos/999999/ack").status_code == 405
        assert fleet_api.post("/api/v1/sos/999999/ack").status_code == 404
        with db() as s:
            acks = s.scalars(select(AuditLog).where(AuditLog.action == "sos_ack")).all()
            assert len(acks) == 1 and acks[0].target == f"sos:{item['id']}"
            (pushed,) = s.scalars(select(Outbox).where(Outbox.channel == "webpush")).all()
            assert pushed.payload["message"]["kind"] == "sos_ack"
            assert pushed.payload["endpoint"] == push.subscription()["endpoint"]
        # a phone without notifications learns it at its next sync
        (mine,) = phone.get("/sos").json()["alerts"]
        assert mine["acknowledged_at"] and mine["acknowledged_by"].startswith("api_key:")
    finally:
        push.stop()


def test_push_subscriptions_are_checked_and_kept_per_phone(phone, db):
    good = {"endpoint": "https://push.example/abc", "keys": {
        "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6"
                  "SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}
    assert phone.post("/push", json=good).status_code == 200
    assert phone.post("/push", json=good).status_code == 200  # again: still one row
    for bad in ({**good, "endpoint": "ftp://push.example/x"},
                {**good, "keys": {**good["keys"], "p256dh": "AAAA"}},
                {**good, "keys": {**good["keys"], "auth": "!!"}}):
        r = phone.post("/push", json=bad)
        assert r.status_code == 422 and r.json()["error"] == "bad_subscription", r.text
    with db() as s:
        assert len(s.scalars(select(PushSubscription)).all()) == 1
    r = phone.api.request("DELETE", "/gw/v1/push", json={"endpoint": good["endpoint"]},
                          headers=phone.headers)
    assert r.json() == {"subscribed": False, "removed": True}
    with db() as s:
        assert s.scalars(select(PushSubscription)).all() == []


def test_the_sos_number_must_be_a_phone_number(fleet_api):
    r = agency_settings(fleet_api, sos_number="call me")
    assert r.status_code == 422 and "sos_number" in r.json()["detail"]
    r = agency_settings(fleet_api, sos_number="")
    assert r.status_code == 200 and r.json()["sos_number"] == ""
