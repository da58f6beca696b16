"""The office routes of the API: corrections, validation, the review list, the visit detail,
and the organisation's export identities. Every refusal is a clear 4xx that changes nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet.api import create_app
from fleet.config import Settings
from fleet.keys import create_api_key
from fleet.models import ClockEvent, Device, VisitRecord, VisitTaskCheck

START = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # 10:00 in Paris, a past Monday
H = timedelta(hours=1)


def iso(t: datetime) -> str:
    return t.isoformat()


@pytest.fixture
def app(database_url):
    return create_app(Settings(database_url=database_url))


@pytest.fixture
def api(app):
    with app.state.sessions() as s:
        admin = create_api_key(s, "admin", "test admin")
        s.commit()
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {admin}"
    return client


def key(app, role: str, org_id: int | None) -> dict:
    with app.state.sessions() as s:
        k = create_api_key(s, role, f"{role} of {org_id}", organisation_id=org_id)
        s.commit()
    return {"Authorization": f"Bearer {k}"}


@pytest.fixture
def agency(app, api):
    org = api.post("/api/v1/organisations", json={"name": "Val d'Aide"}).json()
    c = api.post("/api/v1/clients", json={"organisation_id": org["id"], "name": "Mme Durand"})
    g = api.post("/api/v1/caregivers", json={"organisation_id": org["id"], "name": "Alice"})
    s = api.post("/api/v1/services", json={"organisation_id": org["id"], "name": "Toilette",
                                           "code": "TOIL", "tasks": ["Toilette", "Habillage"]})
    v = api.post("/api/v1/visits", json={
        "client_id": c.json()["id"], "caregiver_id": g.json()["id"],
        "service_id": s.json()["id"], "planned_start": iso(START),
        "planned_end": iso(START + H)}).json()
    return {"org": org, "visit": v, "service": s.json(), "client": c.json(),
            "manager": key(app, "manager", org["id"]),
            "technician": key(app, "technician", org["id"])}


def corrections(api, vid) -> list:
    r = api.get(f"/api/v1/visits/{vid}/corrections")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_a_correction_through_the_api(api, agency):
    vid, m = agency["visit"]["id"], agency["manager"]
    listed = api.get(f"/api/v1/visits/{vid}/corrections").json()
    assert listed["suggested_code"] == "CRE" and set(listed["codes"]) >= {"CRE", "COD"}
    r = api.post(f"/api/v1/visits/{vid}/corrections", headers=m, json={
        "arrival": "2026-11-23T10:05:00+01:00", "departure": "2026-11-23T11:00:00+01:00",
        "why": "paper sheet signed by the client"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["code"] == "CRE" and first["who"].startswith("api_key:")
    assert first["arrival"].startswith("2026-11-23T09:05:00") and first["role"] == "manager"
    r = api.post(f"/api/v1/visits/{vid}/corrections", headers=m, json={
        "code": "CRE", "arrival": iso(START), "departure": iso(START + H),
        "why": "the sheet said 10:00"})
    assert r.status_code == 201 and r.json()["supersedes_id"] == first["id"]
    assert [c["id"] for c in corrections(api, vid)] == [r.json()["id"], first["id"]]
    detail = api.get(f"/api/v1/visits/{vid}").json()
    assert detail["retained"] == {"start": "2026-11-23T09:00:00+00:00",
                                  "end": "2026-11-23T10:00:00+00:00", "minutes": 60}
    assert detail["correction"]["why"] == "the sheet said 10:00"
    assert [c["code"] for c in detail["corrections"]] == ["CRE", "CRE"]
    assert [a["action"] for a in detail["audit"]] == ["correct", "correct", "create"]


@pytest.mark.parametrize("body,status,fragment", [
    ({"code": "ZZZ", "why": "x"}, 422, "unknown correction code"),
    ({"code": "CO2", "arrival": iso(START), "departure": iso(START - H), "why": "x"}, 422,
     "is not after arrival"),
    ({"code": "CO2", "arrival": iso(START), "departure": iso(START + H)}, 422, "say why"),
    ({"code": "CO2", "arrival": iso(START), "departure": iso(START + H), "why": ""}, 422,
     "say why"),
    ({"code": "COD", "why": "x"}, 422, "needs the departure"),
    ({"code": "CO2", "arrival": "2026-11-23T10:00:00", "departure": iso(START + H),
      "why": "x"}, 422, "timezone"),
    ({"code": "CO2", "arrival": "yesterday", "why": "x"}, 422, "datetime"),
])
def test_bad_corrections_are_4xx_and_change_nothing(api, agency, body, status, fragment):
    vid = agency["visit"]["id"]
    r = api.post(f"/api/v1/visits/{vid}/corrections", headers=agency["manager"], json=body)
    assert r.status_code == status and fragment in r.text, r.text
    assert corrections(api, vid) == []
    assert api.get(f"/api/v1/visits/{vid}").json()["record_status"] is None


def test_roles_and_agencies(app, api, agency):
    vid = agency["visit"]["id"]
    body = {"code": "CRE", "arrival": iso(START), "departure": iso(START + H), "why": "x"}
    r = api.post(f"/api/v1/visits/{vid}/corrections", headers=agency["technician"], json=body)
    assert r.status_code == 403
    other = api.post("/api/v1/organisations", json={"name": "Autre"}).json()
    theirs = key(app, "manager", other["id"])
    for method, path, json in (
            ("post", f"/visits/{vid}/corrections", body), ("get", f"/visits/{vid}", None),
            ("get", f"/visits/{vid}/corrections", None), ("post", f"/visits/{vid}/validate", None),
            ("post", f"/visits/{vid}/reopen", {"why": "x"}),
            ("post", "/visits/999999/corrections", body)):
        r = api.request(method.upper(), f"/api/v1{path}", headers=theirs, json=json)
        assert r.status_code == 404 and "not found" in r.json()["detail"], (path, r.text)
    assert corrections(api, vid) == []


def test_validate_locks_until_reopened(api, agency):
    vid, m = agency["visit"]["id"], agency["manager"]
    r = api.post(f"/api/v1/visits/{vid}/validate", headers=m)
    assert r.status_code == 409 and "nothing clocked or corrected" in r.json()["detail"]
    api.post(f"/api/v1/visits/{vid}/corrections", headers=m, json={
        "arrival": iso(START), "departure": iso(START + H), "why": "paper sheet"})
    r = api.post(f"/api/v1/visits/{vid}/validate", headers=m)
    assert r.status_code == 200 and r.json()["validated"] is True
    assert api.post(f"/api/v1/visits/{vid}/validate", headers=m).status_code == 409
    r = api.post(f"/api/v1/visits/{vid}/corrections", headers=m, json={
        "code": "SUP", "why": "duplicate"})
    assert r.status_code == 409 and "reopen it" in r.json()["detail"]
    r = api.patch(f"/api/v1/visits/{vid}", headers=m, json={"status": "cancelled"})
    assert r.status_code == 409
    assert len(corrections(api, vid)) == 1
    assert api.post(f"/api/v1/visits/{vid}/reopen", headers=m, json={}).status_code == 422
    r = api.post(f"/api/v1/visits/{vid}/reopen", headers=m, json={"why": "duplicate found"})
    assert r.status_code == 200 and r.json()["validated"] is False
    r = api.post(f"/api/v1/visits/{vid}/corrections", headers=m, json={
        "code": "SUP", "why": "duplicate"})
    assert r.status_code == 201
    assert api.get(f"/api/v1/visits/{vid}").json()["status"] == "cancelled"


def test_validate_and_reopen_a_month(api, agency):
    org_id, m = agency["org"]["id"], agency["manager"]
    vid = agency["visit"]["id"]
    api.post(f"/api/v1/visits/{vid}/corrections", headers=m, json={
        "arrival": iso(START), "departure": iso(START + H), "why": "paper sheet"})
    r = api.post("/api/v1/months/2026-11/validate")  # the admin key has no organisation
    assert r.status_code == 422 and "organisation_id" in r.json()["detail"]
    r = api.post(f"/api/v1/months/2026-11/validate?organisation_id={org_id}")
    assert r.status_code == 201, r.text
    assert (r.json()["month"], r.json()["visits"]) == ("2026-11", 1)
    assert api.post("/api/v1/months/2026-11/validate", headers=m).status_code == 409
    assert api.post("/api/v1/months/2026-13/validate", headers=m).status_code == 422
    assert api.get(f"/api/v1/visits/{vid}").json()["validation"]["month_validated"] is True
    r = api.post("/api/v1/months/2026-11/reopen", headers=m, json={"why": ""})
    assert r.status_code == 422
    r = api.post("/api/v1/months/2026-11/reopen", headers=m, json={"why": "late sheet"})
    assert r.status_code == 200 and r.json()["reopen_why"] == "late sheet"
    assert api.post("/api/v1/months/2026-11/reopen", headers=m,
                    json={"why": "again"}).status_code == 409
    assert api.post("/api/v1/months/2026-11/validate", headers=agency["technician"]
                    ).status_code == 403


def test_the_review_list(api, agency):
    m = agency["manager"]
    r = api.get("/api/v1/review?from=2026-11-23&to=2026-11-23", headers=m)
    assert r.status_code == 200, r.text
    assert [(i["kind"], i["visit_id"], i["suggested_code"]) for i in r.json()["items"]] == [
        ("missed", agency["visit"]["id"], "CRE")]
    assert r.json()["from"] == "2026-11-23T00:00:00+01:00"
    assert r.json()["to"] == "2026-11-24T00:00:00+01:00"
    r = api.get("/api/v1/review?from=2026-11-23&to=2026-11-23&kind=late,manual", headers=m)
    assert r.json()["items"] == []
    for query, fragment in (("from=yesterday", "give a date"), ("kind=nope", "unknown kind"),
                            ("from=2026-11-24&to=2026-11-20", "after"),
                            ("from=2020-01-01&to=2026-11-20", "at most"),
                            ("from=2026-11-23T10:00:00", "offset")):
        r = api.get(f"/api/v1/review?{query}", headers=m)
        assert r.status_code == 422 and fragment in r.json()["detail"], (query, r.text)


def test_the_visit_page_shows_what_happened_at_the_home(app, api, agency):
    vid = agency["visit"]["id"]
    with app.state.sessions() as s:
        dev = Device(ident="p1", kind="phone", organisation_id=agency["org"]["id"])
        s.add(dev)
        s.flush()
        ev = ClockEvent(device_id=dev.id, seq=1, tag="TG1.x", dir="in", method="manual",
                        reason="tag unreadable", device_ts=START + 3 * timedelta(minutes=14),
                        received_at=START + H, time_quality="synced", pos=[48.8, 2.3, 12.0],
                        raw={"visit": vid}, visit_id=vid, match_status="matched")
        s.add(ev)
        s.flush()
        s.add(VisitRecord(visit_id=vid, actual_start=ev.device_ts, start_event_id=ev.id,
                          retained_start=ev.device_ts, status="in_progress", km=12,
                          expenses_cents=450, report="Mme Durand was tired"))
        first_task = agency["service"]["tasks"][0]["position"]
        from fleet.models import ServiceTask

        task = s.scalars(select(ServiceTask).where(ServiceTask.position == first_task)).one()
        s.add(VisitTaskCheck(visit_id=vid, service_task_id=task.id, done=True, comment="ok"))
        s.commit()
    d = api.get(f"/api/v1/visits/{vid}").json()
    # today's fields are still there
    assert d["planned_start"] == "2026-11-23T09:00:00Z" and d["client_id"] == \
        agency["client"]["id"]
    assert d["client"]["name"] == "Mme Durand" and d["service"]["name"] == "Toilette"
    assert d["late_min"] == 42 and d["late"] is True
    (e,) = d["events"]
    assert (e["method"], e["reason"], e["device"], e["pos"], e["chosen_visit"]) == (
        "manual", "tag unreadable", "p1", [48.8, 2.3, 12.0], vid)
    assert d["raw"]["end"] is None and d["suggested_code"] == "COD"
    assert (d["km"], d["expenses_cents"], d["report"]) == (12, 450, "Mme Durand was tired")
    assert [t["label"] for t in d["tasks_done"]] == ["Toilette"]
    assert [t["label"] for t in d["tasks_not_done"]] == ["Habillage"]
    assert d["validation"]["validated"] is False


def test_organisation_export_identities(api):
    r = api.post("/api/v1/organisations", json={
        "name": "SAAD", "overrun_policy": "cap", "siret": "732 829 320 00074",
        "esppadom_id": "SAAD-75-001"})
    assert r.status_code == 201, r.text
    org = r.json()
    assert (org["overrun_policy"], org["siret"], org["esppadom_id"]) == (
        "cap", "73282932000074", "SAAD-75-001")
    for body, fragment in (({"overrun_policy": "maybe"}, "bill"),
                           ({"siret": "73282932000075"}, "Luhn"),
                           ({"siret": "1234"}, "14 digits"),
                           ({"esppadom_id": "a b"}, "pattern"),
                           ({"overrun_policy": None}, "cannot be null")):
        r = api.patch(f"/api/v1/organisations/{org['id']}", json=body)
        assert r.status_code == 422 and fragment in r.text, (body, r.text)
    r = api.patch(f"/api/v1/organisations/{org['id']}", json={"overrun_policy": "bill",
                                                             "siret": ""})
    assert r.status_code == 200 and r.json()["siret"] == "" and \
        r.json()["overrun_policy"] == "bill"
