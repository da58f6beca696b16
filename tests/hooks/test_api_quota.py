"""The API side: /api/v1/webhooks, webhooks emitted by the API's visit routes, daily quotas per
key with their headers, expired and revoked keys, and `telegest fleet apikey`."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet import quotas
from fleet.api.app import create_app
from fleet.config import Settings
from fleet.keys import create_api_key
from fleet.models import ApiKey, ApiKeyUsage, Outbox
from tests.fleet.conftest import make_agency
from tests.helpers import telegest


@pytest.fixture
def app(database_url):
    return create_app(Settings(database_url=database_url))


@pytest.fixture
def sessions(app):
    return app.state.sessions


def new_key(sessions, role="manager", org_id=None, **kw) -> str:
    with sessions() as s:
        key = create_api_key(s, role, "test", organisation_id=org_id, **kw)
        s.commit()
    return key


@pytest.fixture
def agency(sessions):
    with sessions() as s:
        a = make_agency(s)
        return {"org": a["org"].id, "clients": [c.id for c in a["clients"]],
                "caregivers": [c.id for c in a["caregivers"]]}


@pytest.fixture
def api(app, sessions, agency):
    with TestClient(app) as client:
        client.headers["Authorization"] = "Bearer " + new_key(sessions, org_id=agency["org"])
        yield client


def test_webhooks_through_the_api(api, agency, sessions):
    r = api.post("/api/v1/webhooks", json={"url": "ftp://erp.agence.fr/", "events": ["anomaly"]})
    assert r.status_code == 422 and "http:// or https://" in r.json()["detail"]
    r = api.post("/api/v1/webhooks", json={"url": "https://erp.agence.fr/h",
                                           "events": ["visit.deleted"]})
    assert r.status_code == 422 and "unknown event" in r.json()["detail"]
    r = api.post("/api/v1/webhooks", json={"url": "https://erp.agence.fr/h",
                                           "events": ["visit.created", "visit.cancelled"],
                                           "description": "ERP"})
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["secret"].startswith("whsec_") and hook["active"]
    listed = api.get("/api/v1/webhooks").json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]

    # the API's visit routes emit: created, modified (not subscribed), cancelled
    body = {"client_id": agency["clients"][0], "caregiver_id": agency["caregivers"][0],
            "planned_start": "2026-11-23T09:00:00Z", "planned_end": "2026-11-23T10:00:00Z"}
    vid = api.post("/api/v1/visits", json=body).json()["id"]
    assert api.patch(f"/api/v1/visits/{vid}", json={"planned_end": "2026-11-23T10:30:00Z"}
                     ).status_code == 200
    assert api.patch(f"/api/v1/visits/{vid}", json={"status": "cancelled"}).status_code == 200
    csv = ("date;debut;fin;usager;intervenant\n"
           "24/11/2026;09:00;10:00;Mme Durand;Alice Martin\n").encode()
    r = api.post("/api/v1/visits/import", files={"file": ("p.csv", io.BytesIO(csv))})
    assert r.json()["created"] == 1, r.text
    deliveries = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()
    assert [d["event"] for d in deliveries] == ["visit.created", "visit.cancelled",
                                                "visit.created"]
    assert {d["state"] for d in deliveries} == {"pending"}

    assert api.patch(f"/api/v1/webhooks/{hook['id']}", json={"events": ["x"]}).status_code == 422
    r = api.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": False})
    assert r.json()["active"] is False
    d = deliveries[0]["id"]
    assert api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{d}/replay").status_code == 409
    assert api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert api.get("/api/v1/webhooks").json() == []
    with sessions() as s:
        assert {r.state for r in s.scalars(select(Outbox))} == {"dead"}
        # now dead: it may be replayed, but its endpoint is gone
        assert api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{d}/replay"
                        ).status_code == 404


def test_another_agency_sees_no_endpoint_of_ours(app, api, sessions):
    hook = api.post("/api/v1/webhooks", json={"url": "https://erp.agence.fr/h",
                                              "events": ["anomaly"]}).json()
    with sessions() as s:
        from fleet.models import Organisation
        other = Organisation(name="Autre")
        s.add(other)
        s.commit()
        other_id = other.id
    with TestClient(app) as c:
        c.headers["Authorization"] = "Bearer " + new_key(sessions, org_id=other_id)
        assert c.get("/api/v1/webhooks").json() == []
        assert c.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": False}
                       ).status_code == 404
        assert c.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    with TestClient(app) as c:  # technicians do not manage integrations
        c.headers["Authorization"] = "Bearer " + new_key(sessions, "technician", other_id)
        assert c.get("/api/v1/webhooks").status_code == 403


def test_every_answer_carries_the_quota_headers(api):
    first = api.get("/api/v1/visits")
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "10000"
    assert first.headers["X-RateLimit-Remaining"] == "9999"
    reset = int(first.headers["X-RateLimit-Reset"])
    midnight = datetime.fromtimestamp(reset, timezone.utc)
    assert (midnight.hour, midnight.minute, midnight.second) == (0, 0, 0)
    assert timedelta(0) < midnight - datetime.now(timezone.utc) <= timedelta(days=1)
    # an error answer too, and a streamed export
    missing = api.get("/api/v1/visits/999999")
    assert missing.status_code == 404 and missing.headers["X-RateLimit-Remaining"] == "9998"
    bad = api.post("/api/v1/visits", json={})
    assert bad.status_code == 422 and bad.headers["X-RateLimit-Remaining"] == "9997"
    # the console and the phones' gateway have no quota
    assert "X-RateLimit-Limit" not in api.get("/login").headers


def test_a_key_with_quota_3_gets_429_on_its_fourth_call(app, sessions, agency):
    key = new_key(sessions, org_id=agency["org"], daily_quota=3)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        answers = [c.get("/api/v1/clients") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[3]
    assert refused.headers["X-RateLimit-Limit"] == "3"
    retry = int(refused.headers["Retry-After"])
    reset = int(refused.headers["X-RateLimit-Reset"])
    assert 1 <= retry <= 86400
    assert abs(datetime.now(timezone.utc).timestamp() + retry - reset) <= 2
    assert "quota of 3 calls" in refused.json()["detail"]
    with sessions() as s:
        (usage,) = s.scalars(select(ApiKeyUsage)).all()
        assert usage.calls == 4


def test_the_count_is_per_key_and_per_utc_day(sessions, agency):
    with sessions() as s:
        create_api_key(s, "manager", "a", daily_quota=2)
        create_api_key(s, "manager", "b", daily_quota=2)
        s.commit()
        a, b = s.scalars(select(ApiKey).order_by(ApiKey.id)).all()
        day1 = datetime(2026, 12, 5, 23, 59, tzinfo=timezone.utc)
        counted = [quotas.count_call(s, a, day1) for _ in range(3)]
        assert [(u.calls, u.remaining, u.exceeded) for u in counted] == [
            (1, 1, False), (2, 0, False), (3, 0, True)]
        assert counted[0].reset_at == datetime(2026, 12, 6, tzinfo=timezone.utc)
        assert counted[0].retry_after(day1) == 60
        assert quotas.count_call(s, b, day1).calls == 1
        # a new UTC day starts from zero (23:59 in UTC is 00:59 in Paris: UTC it is)
        assert quotas.count_call(s, a, day1 + timedelta(minutes=2)).calls == 1
        assert quotas.used_today(s, a, day1) == 3


def test_expired_and_revoked_keys_are_refused(app, sessions):
    from fleet.keys import revoke

    soon = datetime.now(timezone.utc) + timedelta(seconds=1)
    with sessions() as s:
        with pytest.raises(ValueError, match="future"):
            create_api_key(s, "manager", "x", expires_at=datetime.now(timezone.utc))
        with pytest.raises(ValueError, match="quota"):
            create_api_key(s, "manager", "x", daily_quota=0)
        with pytest.raises(ValueError, match="organisation"):
            create_api_key(s, "manager", "x", organisation_id=4242)
        expiring = create_api_key(s, "manager", "x", expires_at=soon)
        revoked = create_api_key(s, "manager", "y")
        s.commit()
        key = s.scalars(select(ApiKey).where(ApiKey.label == "x")).one()
        key.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
        revoke(s, s.scalars(select(ApiKey).where(ApiKey.label == "y")).one())
        s.commit()
    with TestClient(app) as c:
        for plaintext in (expiring, revoked):
            r = c.get("/api/v1/clients", headers={"Authorization": f"Bearer {plaintext}"})
            assert r.status_code == 401 and "expired or revoked" in r.json()["detail"]


def test_the_apikey_command(session, database_url):
    org_id = make_agency(session)["org"].id
    made = telegest("fleet", "apikey", "add", "--db", database_url, "--role", "manager",
                    "--name", "ERP", "--org", str(org_id), "--quota", "3", "--expires-days", "30")
    assert made.returncode == 0, made.stderr
    plaintext = made.stdout.strip()
    assert plaintext.startswith("tg_")
    assert telegest("fleet", "apikey", "--db", database_url, "--label", "old way"
                    ).returncode == 0  # no action: add, as before
    listed = telegest("fleet", "apikey", "list", "--db", database_url, "--json")
    rows = json.loads(listed.stdout)
    erp = next(r for r in rows if r["name"] == "ERP")
    assert (erp["role"], erp["organisation_id"], erp["daily_quota"], erp["state"]) == \
        ("manager", org_id, 3, "usable")
    assert erp["expires_at"] and plaintext.startswith(erp["prefix"])
    assert "ERP" in telegest("fleet", "apikey", "list", "--db", database_url).stdout
    gone = telegest("fleet", "apikey", "revoke", str(erp["id"]), "--db", database_url)
    assert gone.returncode == 0 and "revoked" in gone.stdout
    rows = json.loads(telegest("fleet", "apikey", "list", "--db", database_url, "--json").stdout)
    assert next(r for r in rows if r["id"] == erp["id"])["state"] == "revoked"
    for argv, said in ((["revoke", "999"], "no API key 999"),
                       (["revoke"], "needs the key's id"),
                       (["add", "--quota", "0"], "--quota"),
                       (["add", "--org", "4242"], "no organisation 4242")):
        r = telegest("fleet", "apikey", *argv, "--db", database_url)
        assert r.returncode == 2 and said in r.stderr, (argv, r.stderr)
