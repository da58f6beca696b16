"""Finding "phone reports" (issue #14, item 6): a phone may change km, expenses and the report
of a visit under way or ended within the agency's window (24 h), within the agency's bounds,
never on a validated visit; every change is kept in the visit's history.

Before: any visit of the caregiver, any day, any amount up to the schema's limits, and only the
last value was kept."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from fleet.db import make_engine, session_factory
from fleet.models import AlertSettings, AuditLog, Visit, VisitRecord


def _db(demo):
    engine = make_engine(demo[0])
    return engine, session_factory(engine)


def test_finding_phone_reports_within_the_agencys_bounds(phone, demo):
    engine, sessions = _db(demo)
    with sessions() as s:
        org = s.get(Visit, phone.visit_id).organisation_id
        s.add(AlertSettings(organisation_id=org, report_km_max=50,
                            report_expenses_max_cents=3000))
        s.commit()
    engine.dispose()
    ok = phone.post("/visit-report", json={"visit": phone.visit_id, "km": 50})
    assert ok.status_code == 200, ok.text
    r = phone.post("/visit-report", json={"visit": phone.visit_id, "km": 51})
    assert r.status_code == 422 and r.json()["error"] == "out_of_bounds"
    r = phone.post("/visit-report", json={"visit": phone.visit_id, "expenses_cents": 3001})
    assert r.status_code == 422 and "30.00 EUR" in r.json()["detail"]


def test_finding_phone_reports_not_after_the_window_nor_on_a_validated_visit(phone, demo):
    engine, sessions = _db(demo)
    now = datetime.now(timezone.utc)
    with sessions() as s:
        v = s.get(Visit, phone.visit_id)
        v.planned_start, v.planned_end = now - timedelta(hours=27), now - timedelta(hours=26)
        s.commit()
    r = phone.post("/visit-report", json={"visit": phone.visit_id, "km": 3})
    assert r.status_code == 409 and r.json()["error"] == "too_late"
    with sessions() as s:
        v = s.get(Visit, phone.visit_id)
        v.planned_start, v.planned_end = now - timedelta(hours=2), now - timedelta(hours=1)
        s.add(VisitRecord(visit_id=v.id, status="done", validated_at=now,
                          validated_who="user:boss@agency.fr"))
        s.commit()
    engine.dispose()
    r = phone.post("/visit-report", json={"visit": phone.visit_id, "km": 3})
    assert r.status_code == 409 and r.json()["error"] == "validated"


def test_finding_phone_reports_every_change_is_kept(phone, demo):
    for km in (4, 9):
        assert phone.post("/visit-report", json={"visit": phone.visit_id, "km": km,
                                                 "report": "RAS"}).status_code == 200
    engine, sessions = _db(demo)
    with sessions() as s:
        entries = list(s.scalars(sa.select(AuditLog).where(
            AuditLog.action == "visit_report", AuditLog.target == f"visit:{phone.visit_id}")
            .order_by(AuditLog.id)))
    engine.dispose()
    assert [e.detail["after"]["km"] for e in entries] == [4, 9]
    assert entries[0].detail["before"] is None and entries[1].detail["before"]["km"] == 4
    assert entries[1].who == f"device:{phone.ident}"


def test_finding_phone_reports_the_agency_sets_its_bounds(fleet_api, phone):
    r = fleet_api.patch("/api/v1/alert-settings?organisation_id=1",
                        json={"report_km_max": 40, "positions_keep_days": 30})
    if r.status_code == 422 and "organisation" in r.text:  # a key of one organisation
        r = fleet_api.patch("/api/v1/alert-settings", json={"report_km_max": 40,
                                                            "positions_keep_days": 30})
    assert r.status_code == 200, r.text
    assert r.json()["report_km_max"] == 40 and r.json()["positions_keep_days"] == 30
    bad = fleet_api.patch("/api/v1/alert-settings?organisation_id=1",
                          json={"positions_keep_days": 61})
    assert bad.status_code == 422 and "1 to 60 days" in bad.text
    r = phone.post("/visit-report", json={"visit": phone.visit_id, "km": 41})
    assert r.status_code == 422 and "40" in r.json()["detail"]
