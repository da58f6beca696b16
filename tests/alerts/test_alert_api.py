"""GET /api/v1/alerts with its filters, POST /api/v1/alerts/{id}/ack, and the roles."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet.db import make_engine, session_factory
from fleet.keys import create_api_key
from fleet.models import Alert, Device

NOW = datetime.now(timezone.utc)


@pytest.fixture
def seeded(demo, api):
    """Three alerts on two demo devices: low_battery (open), reader_failed (open),
    low_battery (resolved)."""
    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        d1, d2 = s.scalars(select(Device).order_by(Device.id).limit(2)).all()
        s.add_all([
            Alert(kind="low_battery", organisation_id=d1.organisation_id, device_id=d1.id,
                  detail={"bat": 9}, created_at=NOW, opened_at=NOW),
            Alert(kind="reader_failed", organisation_id=d2.organisation_id, device_id=d2.id,
                  detail={"rd": "no_answer"}, created_at=NOW, opened_at=NOW),
            Alert(kind="low_battery", organisation_id=d2.organisation_id, device_id=d2.id,
                  created_at=NOW - timedelta(days=1), resolved_at=NOW - timedelta(hours=1),
                  resolved=True),
        ])
        s.commit()
        keys = {role: create_api_key(s, role, f"{role}-key", organisation_id=d1.organisation_id)
                for role in ("manager", "technician")}
        s.commit()
        out = {"d1": d1.ident, "d2": d2.ident, "keys": keys}
    engine.dispose()
    return out


def kinds(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [a["kind"] for a in resp.json()["items"]]


def test_list_filters(api, seeded):
    assert sorted(kinds(api.get("/api/v1/alerts"))) == ["low_battery", "reader_failed"]
    assert kinds(api.get("/api/v1/alerts?state=resolved")) == ["low_battery"]
    assert len(kinds(api.get("/api/v1/alerts?state=all"))) == 3
    assert kinds(api.get("/api/v1/alerts?kind=reader_failed")) == ["reader_failed"]
    assert kinds(api.get(f"/api/v1/alerts?device={seeded['d1']}")) == ["low_battery"]
    assert kinds(api.get(f"/api/v1/alerts?device={seeded['d2']}&state=all&kind=low_battery")) \
        == ["low_battery"]
    assert api.get("/api/v1/alerts?kind=nonsense").status_code == 422


def test_ack_records_who_and_keeps_the_first(api, seeded):
    alert_id = api.get("/api/v1/alerts?kind=reader_failed").json()["items"][0]["id"]
    got = api.post(f"/api/v1/alerts/{alert_id}/ack")
    assert got.status_code == 200, got.text
    first = got.json()
    assert first["acknowledged_at"] and first["acknowledged_who"].startswith("api_key:")
    headers = {"Authorization": f"Bearer {seeded['keys']['technician']}"}
    again = api.post(f"/api/v1/alerts/{alert_id}/ack", headers=headers).json()
    assert again["acknowledged_who"] == first["acknowledged_who"]
    assert api.post("/api/v1/alerts/999999/ack").status_code == 404


@pytest.mark.parametrize("role", ["manager", "technician"])
def test_field_roles_may_read_and_ack(api, seeded, role):
    headers = {"Authorization": f"Bearer {seeded['keys'][role]}"}
    assert api.get("/api/v1/alerts", headers=headers).status_code == 200
    alert_id = api.get("/api/v1/alerts").json()["items"][0]["id"]
    assert api.post(f"/api/v1/alerts/{alert_id}/ack", headers=headers).status_code == 200
