"""The HTTPS device gateway: the up/clock batch and ack over HTTP, exactly once; health;
the phone's planning with ETag; commands; a blocked phone told to erase itself."""
from __future__ import annotations

import json
import time

import pytest

from fleet import tagdigest
from fleet.brokerauth import NoBrokerAuth
from tests.gateway.conftest import basic, enrol_phone


def batch(*events) -> dict:
    return {"now": int(time.time()), "events": list(events)}


def ev(seq: int, tag: str, direction: str = "in", method: str = "nfc", **kw) -> dict:
    return {"seq": seq, "tag": tag, "dir": direction, "method": method,
            "ts": int(time.time()), "tq": "synced", **kw}


# -- who is calling -----------------------------------------------------------------------------

def test_credentials_are_required_and_checked(phone, fleet_api):
    r = fleet_api.get("/gw/v1/device", headers={"Authorization": ""})
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    assert "Clear-Site-Data" not in r.headers
    r = fleet_api.get("/gw/v1/device", headers=basic(phone.ident, "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "bad_credentials"
    assert "Clear-Site-Data" not in r.headers, "a refused password never erases a phone"
    assert r.headers["WWW-Authenticate"].startswith("TelegestDevice")  # no browser prompt
    r = fleet_api.get("/gw/v1/device", headers=basic("demo-r1", phone.password))
    assert r.status_code == 401, "a reader's ident is not a phone"


def test_first_contact_activates_the_phone(phone, fleet_api):
    assert fleet_api.get(f"/api/v1/devices/{phone.ident}").json()["status"] == "provisioned"
    r = phone.get("/device")
    assert r.status_code == 200
    assert r.json()["acked_seq"] == 0 and r.json()["status"] == "active"
    assert r.headers["Cache-Control"] == "no-store"
    device = fleet_api.get(f"/api/v1/devices/{phone.ident}").json()
    assert device["status"] == "active" and device["last_seen"]


# -- clock events -------------------------------------------------------------------------------

def test_clock_in_and_out_acked_after_commit_and_matched(phone, fleet_api):
    sent = batch(ev(1, phone.tag), ev(2, phone.tag, "out"))
    r = phone.post("/clock", json=sent)
    assert r.status_code == 200
    assert r.json() == {"ack": 2, "rejected": []}
    again = phone.post("/clock", json=sent)  # the same events, even if a second went by
    assert again.json() == {"ack": 2, "rejected": []}, "a resend is a no-op with the same ack"
    events = fleet_api.get("/api/v1/clock-events", params={"device": phone.ident}).json()
    assert [e["seq"] for e in events["items"]] == [1, 2]
    records = fleet_api.get("/api/v1/visit-records").json()["items"]
    mine = [x for x in records if x["visit_id"] == phone.visit_id]
    assert mine and mine[0]["status"] == "done", "matched through the tag + the caregiver"


def test_a_gap_holds_the_ack_until_the_missing_event_arrives(phone):
    assert phone.post("/clock", json=batch(ev(2, phone.tag, "out"))).json()["ack"] == 0
    assert phone.post("/clock", json=batch(ev(1, phone.tag))).json()["ack"] == 2


def test_bad_events_are_rejected_and_acked(phone):
    r = phone.post("/clock", json=batch(ev(1, phone.tag, method="manual"),
                                        ev(2, phone.tag, "out", method="manual",
                                           reason="badge absent")))
    assert r.json() == {"ack": 2, "rejected": [{"seq": 1, "reason": "bad_event"}]}


def test_refused_messages_are_not_acked(phone):
    r = phone.post("/clock", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "malformed_json"
    r = phone.post("/clock", json={"now": 1, "events": []})
    assert r.status_code == 422 and r.json()["error"] == "bad_batch"
    big = batch(*[ev(i, phone.tag, method="manual", reason="x" * 120) for i in range(1, 9)])
    assert len(json.dumps(big)) > 1024
    r = phone.post("/clock", json=big)
    assert r.status_code == 413 and r.json()["error"] == "oversized"
    assert phone.get("/device").json()["acked_seq"] == 0


def test_forged_and_replaced_tags_are_stored_and_flagged(phone, fleet_api):
    """A made-up token and the photographed QR code of a replaced tag: acked like any event
    (nothing lost), flagged for the manager; the new tag clocks in."""
    assert phone.tag.startswith("TG1."), "the demo's tags are signed"
    forged = phone.tag[:-1] + ("A" if phone.tag[-1] != "A" else "B")
    old = fleet_api.get("/api/v1/badges", params={"uid": phone.tag}).json()["items"][0]
    new = fleet_api.post(f"/api/v1/badges/{old['id']}/replace",
                         json={"reason": "QR code seen on a social network"}).json()
    r = phone.post("/clock", json=batch(ev(1, forged, method="qr"), ev(2, phone.tag, "in", "qr"),
                                        ev(3, new["uid"])))
    assert r.json() == {"ack": 3, "rejected": []}
    flagged = fleet_api.get("/api/v1/anomalies", params={"device": phone.ident}).json()["items"]
    assert sorted(a["kind"] for a in flagged) == ["forged_tag", "revoked_badge"]
    revoked = next(a for a in flagged if a["kind"] == "revoked_badge")
    assert "QR code seen on a social network" in revoked["detail"]
    events = fleet_api.get("/api/v1/clock-events", params={"device": phone.ident}).json()
    assert [(e["seq"], e["match_status"]) for e in events["items"]] == [
        (1, "anomaly"), (2, "anomaly"), (3, "matched")]
    # the manager marks the forged one handled: it leaves the open list
    forged_id = next(a["id"] for a in flagged if a["kind"] == "forged_tag")
    assert fleet_api.patch(f"/api/v1/anomalies/{forged_id}",
                           json={"resolved": True}).json()["resolved"]
    still = fleet_api.get("/api/v1/anomalies", params={"resolved": False}).json()["items"]
    assert [a["kind"] for a in still] == ["revoked_badge"]


def test_a_phone_writes_only_its_own_events(phone, fleet_api):
    other = enrol_phone(fleet_api, ident="phone-bruno", caregiver="Bruno Leroy",
                        client_name="M. Paul Petit")
    assert other.post("/clock", json=batch(ev(1, other.tag))).json()["ack"] == 1
    assert phone.get("/device").json()["acked_seq"] == 0


def test_a_re_enrolled_phone_learns_where_its_sequence_stands(phone, fleet_api):
    phone.post("/clock", json=batch(ev(1, phone.tag), ev(2, phone.tag, "out")))
    token = fleet_api.post(f"/api/v1/devices/{phone.ident}/enrolment").json()["token"]
    creds = fleet_api.post("/api/v1/enrol", json={"token": token}).json()
    assert phone.get("/device").status_code == 401, "the old password stopped working"
    r = fleet_api.get("/gw/v1/device", headers=basic(phone.ident, creds["password"]))
    assert r.json()["acked_seq"] == 2


# -- health -------------------------------------------------------------------------------------

def test_health_is_stored_like_a_readers(phone, fleet_api):
    doc = {"now": int(time.time()), "fw": "0.1.0", "up": 12, "heap": 0, "jd": 3,
           "jfull": False, "rd": "ok", "tq": "synced", "cfg": 2, "bat": 81, "sync": 1,
           "app": "caregiver"}
    assert phone.post("/health", json=doc).json() == {"ok": True}
    device = fleet_api.get(f"/api/v1/devices/{phone.ident}").json()
    assert device["health"]["bat"] == 81 and device["health"]["jd"] == 3
    assert device["fw_version"] == "0.1.0"
    r = phone.post("/health", json={"now": 1})
    assert r.status_code == 422 and r.json()["error"] == "bad_health"


# -- planning -----------------------------------------------------------------------------------

def test_planning_holds_no_tag_tokens(phone, fleet_api):
    """Issue #11 item 3: the phone's planning carried every client's tag token, which the
    phone could replay from anywhere. Now it carries digests only: no token, no UID."""
    body = phone.get("/config").text
    tags = fleet_api.get("/api/v1/badges", params={"kind": "client_tag",
                                                   "limit": 500}).json()["items"]
    assert tags and phone.tag.startswith("TG1.")
    for b in tags:
        assert b["uid"] not in body
    assert '"tags"' not in body


def test_config_is_the_caregivers_week_with_etag(phone, fleet_api):
    r = phone.get("/config")
    assert r.status_code == 200
    doc = r.json()
    assert doc["caregiver"]["name"] == "Alice Martin" and doc["days"] == 7
    visit = next(v for v in doc["visits"] if v["id"] == phone.visit_id)
    client = doc["clients"][str(visit["client"])]
    assert client["name"] == "Mme Jeanne Durand" and client["address"]
    assert tagdigest.digest(doc["tag_salt"], phone.tag) in client["tag_digests"]
    people = {v["client"] for v in doc["visits"]}
    assert all(doc["clients"][str(c)] for c in people)
    assert doc["version"] >= 1 and len(doc["hash"]) == 64
    etag = r.headers["ETag"]
    r = phone.get("/config", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""

    start = visit["start"] + 1800
    patch = fleet_api.patch(f"/api/v1/visits/{phone.visit_id}", json={
        "planned_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "planned_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 3600))})
    assert patch.status_code == 200, patch.text
    r = phone.get("/config", headers={"If-None-Match": etag})
    assert r.status_code == 200 and r.headers["ETag"] != etag
    moved = next(v for v in r.json()["visits"] if v["id"] == phone.visit_id)
    assert moved["start"] == start
    assert r.json()["version"] == doc["version"] + 1, "the version follows the device config"


def test_other_caregivers_visits_are_not_sent(phone, fleet_api):
    visits = phone.get("/config").json()["visits"]
    planned = fleet_api.get("/api/v1/visits", params={"caregiver_id": phone.caregiver_id,
                                                      "limit": 1000}).json()["items"]
    assert {v["id"] for v in visits} <= {v["id"] for v in planned}


# -- commands and the lost phone ----------------------------------------------------------------

def test_ping_is_delivered_once_and_answered(phone, demo):
    from datetime import timedelta

    from fleet.db import make_engine, session_factory
    from fleet.models import Device, DeviceCommand
    from fleet.types import utcnow

    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        dev = s.query(Device).filter_by(ident=phone.ident).one()
        cmd = DeviceCommand(device_id=dev.id, kind="ping", payload=None,
                            expires_at=utcnow() + timedelta(hours=1), created_by="test")
        s.add(cmd)
        s.commit()
        cmd_id = cmd.id
    engine.dispose()
    cmds = phone.get("/cmd").json()["commands"]
    assert [c["cmd"] for c in cmds] == ["ping"]
    assert phone.get("/cmd").json()["commands"] == [], "sent once"
    r = phone.post(f"/cmd/{cmd_id}", json={"ok": True, "result": "pong"})
    assert r.json() == {"id": cmd_id, "state": "done"}


def test_a_blocked_phone_is_told_to_erase_itself(phone, fleet_api):
    phone.post("/clock", json=batch(ev(1, phone.tag)))
    r = fleet_api.post(f"/api/v1/devices/{phone.ident}/block",
                       json={"reason": "lost on the bus"})
    assert r.status_code == 200, r.text
    for path in ("/cmd", "/config", "/device"):
        r = phone.get(path)
        assert r.status_code == 403
        assert r.headers["Clear-Site-Data"] == '"storage"'
        assert r.json()["error"] == "blocked" and r.json()["wipe"] is True
    r = phone.post("/clock", json=batch(ev(2, phone.tag, "out")))
    assert r.status_code == 403, "nothing more is accepted from a lost phone"
    cmds = fleet_api.get(f"/api/v1/devices/{phone.ident}/commands").json()["items"]
    assert cmds[0]["kind"] == "wipe" and cmds[0]["state"] == "sent"
    wrong = fleet_api.get("/gw/v1/cmd", headers=basic(phone.ident, "guess"))
    assert wrong.status_code == 401 and "Clear-Site-Data" not in wrong.headers


def test_a_retired_phone_is_told_to_erase_itself(phone, fleet_api):
    r = fleet_api.post(f"/api/v1/devices/{phone.ident}/retire", json={"reason": "broken"})
    assert r.status_code == 200, r.text
    r = phone.get("/config")
    assert r.status_code == 403 and r.json()["error"] == "retired"
    assert r.headers["Clear-Site-Data"] == '"storage"'


# -- notes and the end-of-visit report ----------------------------------------------------------

def test_visit_report_writes_the_record(phone, fleet_api, demo):
    services = fleet_api.get("/api/v1/services").json()["items"]
    svc = services[0]
    fleet_api.patch(f"/api/v1/visits/{phone.visit_id}", json={"service_id": svc["id"]})
    tasks = [t[0] for t in phone.get("/config").json()["services"][str(svc["id"])]["tasks"]]
    body = {"visit": phone.visit_id, "km": 12, "expenses_cents": 450,
            "comment": "parking payant", "report": "RAS, repas pris.",
            "tasks": {str(tasks[0]): True, str(tasks[1]): False, "999999": True}}
    assert phone.post("/visit-report", json=body).json() == {"visit": phone.visit_id,
                                                             "saved": True}
    assert phone.post("/visit-report", json=body).status_code == 200, "the last one wins"
    import sqlalchemy as sa
    engine = sa.create_engine(demo[0])
    with engine.connect() as c:
        rec = c.execute(sa.text("SELECT km, expenses_cents, report FROM visit_records "
                                "WHERE visit_id = :v"), {"v": phone.visit_id}).one()
        checks = c.execute(sa.text("SELECT service_task_id, done FROM visit_task_checks "
                                   "WHERE visit_id = :v ORDER BY service_task_id"),
                           {"v": phone.visit_id}).all()
    engine.dispose()
    assert rec == (12, 450, "RAS, repas pris.\n\nComments: parking payant")
    assert [(t, bool(d)) for t, d in checks] == [(tasks[0], True), (tasks[1], False)]
    # then the clock-in arrives: matching fills the same record
    phone.post("/clock", json=batch(ev(1, phone.tag)))
    records = fleet_api.get("/api/v1/visit-records").json()["items"]
    mine = next(x for x in records if x["visit_id"] == phone.visit_id)
    assert mine["actual_start"] and mine["status"] == "in_progress"


def test_a_report_on_someone_elses_visit_is_refused(phone, fleet_api):
    other = enrol_phone(fleet_api, ident="phone-bruno", caregiver="Bruno Leroy",
                        client_name="M. Paul Petit")
    r = phone.post("/visit-report", json={"visit": other.visit_id, "km": 3})
    assert r.status_code == 404


@pytest.mark.parametrize("bad", [{"visit": 1, "km": -1}, {"visit": 1, "report": "x" * 5000}])
def test_report_fields_are_bounded(phone, bad):
    assert phone.post("/visit-report", json=bad).status_code == 422


def test_no_broker_needed(phone):
    assert isinstance(phone.api.app.state.broker_control, NoBrokerAuth)
