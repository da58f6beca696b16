"""GET/PATCH /api/v1/alert-settings (fleet.agency_settings) and the visit filter of
GET /api/v1/alerts."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fleet import visit_alerts
from fleet.db import make_engine, session_factory
from fleet.keys import create_api_key
from fleet.models import AuditLog, Organisation
from tests.helpers import unstarted_visit


@pytest.fixture
def keys(demo):
    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        org_id = s.scalar(select(Organisation.id).order_by(Organisation.id))
        out = {role: create_api_key(s, role, f"{role}-key", organisation_id=org_id)
               for role in ("manager", "technician")}
        s.commit()
    engine.dispose()
    return {**out, "org_id": org_id}


def as_(api, key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_read_then_change_thresholds_and_oncall(api, keys, demo):
    h = as_(api, keys["manager"])
    got = api.get("/api/v1/alert-settings", headers=h)
    assert got.status_code == 200, got.text
    assert set(got.json()) == {"organisation_id", "timezone", "tolerance_min", "rounding_mode",
                               "rounding_step_min", "overrun_policy", "late_after_min",
                               "missed_after_min", "oncall_emails", "sos_number",
                               "positions_keep_days", "rejections_keep_days", "audit_keep_days",
                               "report_window_h", "report_km_max", "report_expenses_max_cents",
                               "home_radius_m"}
    assert {k: got.json()[k] for k in ("organisation_id", "late_after_min",
                                       "missed_after_min", "oncall_emails")} == {
        "organisation_id": keys["org_id"], "late_after_min": 15, "missed_after_min": 60,
        "oncall_emails": []}
    changed = api.patch("/api/v1/alert-settings", headers=h, json={
        "late_after_min": 10, "missed_after_min": 45, "overrun_policy": "cap",
        "oncall_emails": ["astreinte@agence.fr", " nuit@agence.fr ", "ASTREINTE@agence.fr"]})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["late_after_min"], body["missed_after_min"], body["overrun_policy"]) == \
        (10, 45, "cap")
    assert body["oncall_emails"] == ["astreinte@agence.fr", "nuit@agence.fr"]
    assert api.get("/api/v1/alert-settings", headers=h).json() == body
    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "settings")).one()
        assert entry.target == f"organisation:{keys['org_id']}"
        assert entry.detail["changed"]["late_after_min"] == [15, 10]
        assert entry.who.startswith("api_key:")
    engine.dispose()


@pytest.mark.parametrize("body, field", [
    ({"oncall_emails": ["astreinte@agence.fr", "not an address"]}, "oncall_emails"),
    ({"late_after_min": 60, "missed_after_min": 30}, "missed_after_min"),
    ({"late_after_min": 0}, "late_after_min"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"tolerance_min": 1000}, "tolerance_min"),
])
def test_bad_values_name_the_field_and_change_nothing(api, keys, body, field):
    h = as_(api, keys["manager"])
    before = api.get("/api/v1/alert-settings", headers=h).json()
    got = api.patch("/api/v1/alert-settings", headers=h, json=body)
    assert got.status_code == 422 and field in got.text, got.text
    assert api.get("/api/v1/alert-settings", headers=h).json() == before


def test_unknown_field_and_wrong_types_are_422(api, keys):
    h = as_(api, keys["manager"])
    assert api.patch("/api/v1/alert-settings", headers=h,
                     json={"sms": True}).status_code == 422
    assert api.patch("/api/v1/alert-settings", headers=h,
                     json={"rounding_mode": "sometimes"}).status_code == 422


def test_technicians_may_not_and_admin_keys_name_the_organisation(api, keys):
    assert api.get("/api/v1/alert-settings",
                   headers=as_(api, keys["technician"])).status_code == 403
    assert api.get("/api/v1/alert-settings").status_code == 422  # the admin key has no org
    got = api.get(f"/api/v1/alert-settings?organisation_id={keys['org_id']}")
    assert got.status_code == 200 and got.json()["organisation_id"] == keys["org_id"]
    assert api.get("/api/v1/alert-settings?organisation_id=999").status_code == 404


def test_alerts_filtered_by_visit(api, demo):
    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        visit = unstarted_visit(s, 20)
        visit_alerts.sweep(s, visit.planned_start + timedelta(minutes=16))
        s.commit()
        visit_id = visit.id
    engine.dispose()
    got = api.get(f"/api/v1/alerts?visit={visit_id}")
    assert got.status_code == 200, got.text
    assert [(a["kind"], a["visit_id"]) for a in got.json()["items"]] == [("late", visit_id)]
