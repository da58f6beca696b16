"""Finding "tenants stay apart" (issue #14, item 4): every route of the OpenAPI, called with
another organisation's admin key on this organisation's objects, answers 403 or 404 and changes
nothing; every list seen with that key holds none of this organisation's rows.

The routes come from the app's own OpenAPI, so a route added later is covered the day it is
added: a path parameter or a request body this test does not know makes it fail, naming the
route, until the tables below say what to send.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fleet import updates, visit_series, webhooks
from fleet.models import (Absence, Alert, Anomaly, AuditLog, Badge, CallbackRequest, Caregiver,
                          ClientField, ClockEvent, Client, Device, DeviceCommand, Funder,
                          FundingPlan, Message, Organisation, Rollout, Service, SosAlert, Visit)
from tests.updates.bundles import PUB, signed, signed_offer

# what to send as a body, by (method, path); a route not listed gets {}
BODIES = {
    ("PATCH", "/api/v1/organisations/{org_id}"): {"name": "taken over"},
    ("PATCH", "/api/v1/clients/{obj_id}"): {"name": "taken over"},
    ("PATCH", "/api/v1/caregivers/{obj_id}"): {"name": "taken over"},
    ("PATCH", "/api/v1/services/{service_id}"): {"name": "taken over"},
    ("PATCH", "/api/v1/badges/{badge_id}"): {"active": False, "reason": "taken over"},
    ("POST", "/api/v1/badges/{badge_id}/replace"): {"reason": "taken over"},
    ("POST", "/api/v1/devices/{ident}/provision"): {"reason": "taken over"},
    ("POST", "/api/v1/devices/{ident}/block"): {"reason": "taken over"},
    ("POST", "/api/v1/devices/{ident}/unblock"): {"reason": "taken over"},
    ("POST", "/api/v1/devices/{ident}/wiped"): {"reason": "taken over"},
    ("POST", "/api/v1/devices/{ident}/retire"): {"reason": "taken over"},
    ("PATCH", "/api/v1/visits/{visit_id}"): {"planned_end": "2030-01-01T10:00:00Z"},
    ("PATCH", "/api/v1/anomalies/{anomaly_id}"): {"resolved": True},
    ("POST", "/api/v1/rollouts/{rollout_id}/{action}"): {"reason": "taken over"},
    ("POST", "/api/v1/visits/{visit_id}/corrections"): {
        "code": "COD", "departure": "2026-11-23T10:00:00Z", "why": "taken over"},
    ("POST", "/api/v1/visits/{visit_id}/reopen"): {"why": "taken over"},
    ("POST", "/api/v1/months/{month}/reopen"): {"why": "taken over"},
    ("PATCH", "/api/v1/funders/{funder_id}"): {"name": "taken over"},
    ("POST", "/api/v1/devices/{ident}/provision/stage"): {"reason": "taken over"},
    ("POST", "/api/v1/devices/{ident}/provision/confirm"): {"staging_id": "x" * 16,
                                                             "digest": "0" * 64},
    ("POST", "/api/v1/devices/{ident}/provision/abandon"): {"staging_id": "x" * 16},
    ("PATCH", "/api/v1/funding-plans/{plan_id}"): {"reference": "taken over"},
    ("PUT", "/api/v1/clients/{client_id}/record"): {"access_code": "taken over"},
    ("PUT", "/api/v1/caregivers/{obj_id}/card"): {"number": "X1", "valid_from": "2030-01-01",
                                                  "valid_until": "2030-12-31"},
    ("PATCH", "/api/v1/client-fields/{field_id}"): {"label": "taken over"},
    ("PATCH", "/api/v1/webhooks/{endpoint_id}"): {"active": False},
    ("PATCH", "/api/v1/visit-series/{series_id}"): {"scope": "this", "day": "2030-01-07",
                                                    "at": "09:00"},
}
# routes that act on the key's own organisation: called naming agency A's
ON_OWN_ORGANISATION = {"/api/v1/months/{month}/validate", "/api/v1/months/{month}/reopen"}
# routes that are not about one organisation's objects, with why
NOT_SCOPED = {
    "/api/v1/enrol": "public: a one-time token, no key",
    "/healthz": "no data",
    "/api/v1/bundles": "firmware bundles are the fleet's, shared by every agency",
    "/api/v1/bundles/{bundle_id}": "firmware bundles are the fleet's, shared by every agency",
}


@pytest.fixture
def world(demo, monkeypatch):
    """The demo agency (A) with one thing of each kind, and an admin key of agency B."""
    from fleet.db import make_engine, session_factory
    from fleet.keys import create_api_key

    db_url, info = demo
    monkeypatch.setenv("TELEGEST_UPDATE_KEYS", PUB)
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        a = info["organisation_id"]
        b = Organisation(name="Agence B", timezone="Europe/Paris")
        s.add(b)
        s.flush()
        device = s.scalars(select(Device).where(Device.organisation_id == a)).first()
        visit = s.scalars(select(Visit).where(Visit.organisation_id == a)).first()
        now = datetime.now(timezone.utc)
        client_a = s.scalars(select(Client).where(Client.organisation_id == a)).first()
        funder = Funder(organisation_id=a, kind="APA", name="Département A",
                        identifier="CD-A-001")
        s.add(funder)
        s.flush()
        s.add(FundingPlan(organisation_id=a, client_id=client_a.id, funder_id=funder.id,
                          reference="PA-A-1", valid_from=now.date() - timedelta(days=30)))
        s.add(Device(ident="b-r1", kind="reader", organisation_id=b.id, status="active"))
        s.add(ClientField(organisation_id=a, key="gir", label="GIR", kind="text"))
        firmware = signed("0.9.0")
        offer = signed_offer(firmware)
        bundle = updates.store_bundle(s, updates.write_bundle(firmware), "test",
                                      check_signature=False)
        s.flush()
        # agency A's rollout of one of its readers (its filter carries the agency)
        rollout = updates.start_rollout(s, bundle.id, "api_key:0:agency A",
                                        filt={"organisation_id": a, "prefix": device.ident},
                                        offer=offer)
        s.add_all([Anomaly(kind="double_tap", organisation_id=a, device_id=device.id),
                   Alert(kind="late", organisation_id=a, visit_id=visit.id),
                   DeviceCommand(device_id=device.id, kind="ping",
                                 expires_at=now + timedelta(hours=1)),
                   Absence(organisation_id=a, caregiver_id=visit.caregiver_id, kind="leave",
                           starts_at=now, ends_at=now + timedelta(days=1),
                           requested_by="test", state="requested"),
                   Message(organisation_id=a, subject="A's", body="A's"),
                   CallbackRequest(organisation_id=a, caregiver_id=s.scalar(select(
                       Caregiver.id).where(Caregiver.organisation_id == a))),
                   SosAlert(organisation_id=a, device_id=device.id, uid="tenancy-sos",
                            source="box", raised_at=now)])
        hook, _ = webhooks.create(s, a, "https://erp.agence-a.fr/h", ["visit.created"])
        webhooks.visit_created(s, visit)
        s.flush()
        series = visit_series.create(  # Mondays from 2030-01-07
            s, s.get(Organisation, a), client_id=client_a.id,
            caregiver_id=s.scalar(select(Caregiver.id).where(Caregiver.organisation_id == a)),
            rrule_text="FREQ=WEEKLY;BYDAY=MO", starts_on=date(2030, 1, 7), at="08:00",
            duration_min=60, today=date(2030, 1, 7), who="test")
        ids = {
            "org_id": a,
            "client": s.scalar(select(Client.id).where(Client.organisation_id == a)),
            "caregiver": s.scalar(select(Caregiver.id).where(Caregiver.organisation_id == a)),
            "service_id": s.scalar(select(Service.id).where(Service.organisation_id == a)),
            "badge_id": s.scalar(select(Badge.id).where(Badge.organisation_id == a)),
            "ident": device.ident,
            "visit_id": visit.id,
            "anomaly_id": s.scalar(select(func.max(Anomaly.id))),
            "alert_id": s.scalar(select(func.max(Alert.id))),
            "command_id": s.scalar(select(func.max(DeviceCommand.id))),
            "sos_id": s.scalar(select(func.max(SosAlert.id))),
            "month": now.strftime("%Y-%m"),
            "rollout_id": rollout.id,
            "bundle_id": bundle.id,
            "offer": offer,
            "org_b": b.id,
            "funder_id": funder.id,
            "plan_id": s.scalar(select(func.max(FundingPlan.id))),
            "client_id": client_a.id,
            "field_id": s.scalar(select(func.max(ClientField.id))),
            "absence_id": s.scalar(select(func.max(Absence.id))),
            "endpoint_id": hook.id,
            "delivery_id": webhooks.deliveries(s, hook.id)[0].id,
            "message_id": s.scalar(select(func.max(Message.id))),
            "request_id": s.scalar(select(func.max(CallbackRequest.id))),
            "series_id": series.id,
            "day": "2030-01-07",
            "names": [c.name for c in s.scalars(select(Client).where(
                Client.organisation_id == a))] + [g.name for g in s.scalars(select(
                    Caregiver).where(Caregiver.organisation_id == a))],
        }
        key_b = create_api_key(s, "admin", "agency B's admin", organisation_id=b.id)
        s.commit()
    engine.dispose()
    from fleet.api.app import create_app
    from fleet.config import Settings

    client = TestClient(create_app(Settings(database_url=db_url)))
    client.headers["Authorization"] = f"Bearer {key_b}"
    return db_url, ids, client


def _path(template: str, ids: dict) -> str:
    from string import Formatter

    values = {}
    for _, name, _, _ in Formatter().parse(template):
        if name is None:
            continue
        if name == "obj_id":
            values[name] = ids["client" if "/clients/" in template else "caregiver"]
        elif name == "action":
            values[name] = "pause"
        elif name in ids:
            values[name] = ids[name]
        else:
            raise AssertionError(f"{template}: say which of agency A's objects {{{name}}} is "
                                 "in this test's `ids`")
    return template.format(**values)


def _snapshot(db_url: str) -> tuple:
    from fleet.db import make_engine, session_factory

    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        snap = (s.scalar(select(func.count()).select_from(AuditLog)),
                [(d.ident, d.status, d.credential_hash) for d in s.scalars(select(Device))],
                [(v.id, v.planned_end, v.status) for v in s.scalars(select(Visit))],
                [(b.id, b.active) for b in s.scalars(select(Badge))],
                s.scalar(select(func.count()).select_from(ClockEvent)),
                [(r.id, r.state) for r in s.scalars(select(Rollout))])
    engine.dispose()
    return snap


def test_finding_tenants_every_route_refuses_another_agencys_objects(world):
    db_url, ids, client = world
    spec = client.app.openapi()
    before = _snapshot(db_url)
    leaks = []
    for template, ops in spec["paths"].items():
        if template in NOT_SCOPED or template.startswith("/gw/"):
            continue  # the device gateway authenticates phones, not keys (tests/gateway)
        for method, op in ops.items():
            has_params = any(p["in"] == "path" for p in op.get("parameters", []))
            if not has_params:
                continue
            url = _path(template, ids)
            body = BODIES.get((method.upper(), template), {}) if "requestBody" in op else None
            params = ({"organisation_id": ids["org_id"]} if template in ON_OWN_ORGANISATION
                      else None)
            r = client.request(method.upper(), url, json=body, params=params)
            if r.status_code not in (403, 404):
                leaks.append(f"{method.upper()} {url}: {r.status_code} {r.text[:160]}")
    assert leaks == []
    assert _snapshot(db_url) == before  # nothing of agency A changed


def test_finding_tenants_lists_hold_none_of_another_agencys_rows(world):
    _, ids, client = world
    spec = client.app.openapi()
    leaks = []
    for template, ops in spec["paths"].items():
        if template in NOT_SCOPED or template.startswith("/gw/") or "{" in template:
            continue
        if "get" not in ops:
            continue
        if template.startswith("/api/v1/exports/"):  # files, not JSON: no name of agency A
            day = datetime.now(timezone.utc).date().isoformat()
            r = client.get(template, params={"from": day, "to": day})
            if r.status_code == 200 and any(n in r.text for n in ids["names"]):
                leaks.append(f"{template}: {r.text[:160]}")
            continue
        r = client.get(template)
        if r.status_code in (403, 404, 422):
            continue
        doc = r.json()
        if template == "/api/v1/ingest/stats":  # agency A's devices sent events: not counted
            if doc != {"counters": {"stored": 0}, "rejections": {}, "organisation_id":
                       doc.get("organisation_id")} or doc["organisation_id"] == ids["org_id"]:
                leaks.append(f"{template}: {doc}")
            continue
        if template == "/api/v1/alert-settings":  # the key's own agency's; naming A: 403
            other = {"organisation_id": ids["org_id"]}
            if doc["organisation_id"] == ids["org_id"] or \
                    client.get(template, params=other).status_code != 403 or \
                    client.patch(template, params=other,
                                 json={"late_after_min": 5}).status_code != 403:
                leaks.append(f"{template}: {doc}")
            continue
        if template == "/api/v1/emergency-numbers":  # the same: the key's own agency's
            other = {"organisation_id": ids["org_id"]}
            if doc["organisation_id"] == ids["org_id"] or \
                    client.get(template, params=other).status_code != 403 or \
                    client.put(template, params=other, json={"emergency": []}
                               ).status_code != 403:
                leaks.append(f"{template}: {doc}")
            continue
        assert isinstance(doc, list) or "items" in doc, f"{template}: say how to read {doc}"
        items = doc.get("items") if isinstance(doc, dict) else doc
        if template == "/api/v1/organisations":
            if any(o["id"] == ids["org_id"] for o in items):
                leaks.append(template)
        # agency B's own rows (its reader) are no leak
        elif others := [i for i in items if not (isinstance(i, dict) and
                                                 i.get("organisation_id") == ids["org_b"])]:
            leaks.append(f"{template}: {str(others)[:160]}")
    assert leaks == []


def test_finding_tenants_firmware_updates_are_the_fleet_operators(world):
    """An agency's admin key could upload a bundle and roll it out to every agency's devices
    (a rollout's filter was not scoped): now only a key of no organisation uploads bundles,
    and an agency's rollouts are its own (next test)."""
    _, _, client = world
    r = client.post("/api/v1/bundles", content=b"PK")
    assert r.status_code == 403 and "fleet operator" in r.json()["detail"]
    assert client.get("/api/v1/bundles").status_code == 200  # shared firmware, read-only


def _as(client: TestClient, key: str) -> TestClient:
    other = TestClient(client.app)
    other.headers["Authorization"] = f"Bearer {key}"
    return other


def _ids(r) -> list[int]:
    assert r.status_code == 200, r.text
    return [x["id"] for x in r.json()["items"]]


def test_finding_tenants_rollouts_per_agency(world):
    """Rollouts were the fleet operator's only. Now an agency's admin key rolls an uploaded
    bundle out to its own readers (its filter never reaches another agency's), and sees and
    steers its own rollouts only; the operator keeps the all-agency view."""
    from fleet.db import make_engine, session_factory
    from fleet.keys import create_api_key

    db_url, ids, as_b = world
    a_org, rid, bundle = ids["org_id"], ids["rollout_id"], ids["bundle_id"]
    offer = {"bundle_id": bundle, "offer": ids["offer"]}  # signed by the release manager
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        key_a = create_api_key(s, "admin", "agency A's admin", organisation_id=a_org)
        key_a_manager = create_api_key(s, "manager", "agency A's manager", organisation_id=a_org)
        key_op = create_api_key(s, "admin", "fleet operator")
        a_readers = set(s.scalars(select(Device.ident).where(
            Device.organisation_id == a_org, Device.kind == "reader",
            Device.status.in_(("registered", "provisioned", "active")))))
        s.commit()
    engine.dispose()
    as_a, as_op = _as(as_b, key_a), _as(as_b, key_op)

    assert _ids(as_a.get("/api/v1/rollouts")) == [rid]
    assert _ids(as_b.get("/api/v1/rollouts")) == []
    assert as_a.get(f"/api/v1/rollouts/{rid}").status_code == 200
    assert as_a.post(f"/api/v1/rollouts/{rid}/cancel", json={"reason": "ours"}
                     ).json()["state"] == "cancelled"

    # another agency's readers are out of reach, whatever the filter or the list says
    start = "/api/v1/rollouts"
    r = as_a.post(start, json={**offer, "filter": {"organisation_id": ids["org_b"]}})
    assert r.status_code == 403 and "its own devices" in r.json()["detail"]
    r = as_a.post(start, json={**offer, "devices": ["b-r1"]})
    assert r.status_code == 422 and "b-r1" in r.json()["detail"]
    assert as_a.post(start, json={**offer, "filter": {"prefix": "b-"}}
                     ).status_code == 422  # no device to update
    one = sorted(a_readers)[0]
    r = as_a.post(start, json={**offer, "devices": [one]})
    assert r.status_code == 201, r.text
    listed = r.json()["id"]
    assert as_a.post(f"/api/v1/rollouts/{listed}/cancel").status_code == 200
    r = as_a.post(start, json={**offer, "filter": {}})
    assert r.status_code == 201, r.text
    mine = r.json()["id"]
    assert {t["device"] for t in r.json()["targets"]} == a_readers

    # agency B sees none of it and may steer none of it; its own rollout is its own
    assert as_b.get(f"/api/v1/rollouts/{mine}").status_code == 404
    assert as_b.post(f"/api/v1/rollouts/{mine}/pause").status_code == 404
    r = as_b.post(start, json={**offer, "filter": {}})
    assert r.status_code == 201 and [t["device"] for t in r.json()["targets"]] == ["b-r1"]
    theirs = r.json()["id"]
    assert _ids(as_b.get("/api/v1/rollouts")) == [theirs]
    assert as_a.get(f"/api/v1/rollouts/{theirs}").status_code == 404
    assert sorted(_ids(as_a.get("/api/v1/rollouts"))) == sorted([rid, listed, mine])

    # the operator sees every agency's; a manager starts none; an agency uploads no bundle
    assert sorted(_ids(as_op.get("/api/v1/rollouts"))) == sorted([rid, listed, mine, theirs])
    assert as_op.get(f"/api/v1/rollouts/{theirs}").status_code == 200
    assert _as(as_b, key_a_manager).post(start, json={**offer, "filter": {}}
                                         ).status_code == 403
    assert as_a.post("/api/v1/bundles", content=b"PK").status_code == 403


def test_finding_tenants_badges_are_unique_per_organisation(world):
    """Before: a card UID registered by one agency could not be registered by another (the
    constraint was global), which also told agency B that agency A had that card."""
    db_url, ids, client = world
    from fleet.db import make_engine, session_factory

    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        uid = s.scalars(select(Badge.uid).where(Badge.organisation_id == ids["org_id"],
                                                Badge.kind == "caregiver_card")).first()
    engine.dispose()
    caregiver = client.post("/api/v1/caregivers", json={"name": "Agent B"}).json()
    r = client.post("/api/v1/badges", json={"kind": "caregiver_card", "uid": uid,
                                            "caregiver_id": caregiver["id"]})
    assert r.status_code == 201, r.text
    again = client.post("/api/v1/badges", json={"kind": "caregiver_card", "uid": uid,
                                                "caregiver_id": caregiver["id"]})
    assert again.status_code == 409  # still unique within the agency
