"""Fixtures of the gateway tests: the API (no broker: lifecycle gets NoBrokerAuth), a phone
enrolled through the real routes, and a visit of its caregiver happening now."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest

from fleet.brokerauth import NoBrokerAuth
from tests.fleetops.conftest import make_api


def basic(ident: str, password: str) -> dict:
    token = base64.b64encode(f"{ident}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def fleet_api(demo):
    client = make_api(demo[0], NoBrokerAuth(), label="gateway")
    with client:
        yield client


class Phone:
    def __init__(self, api, ident: str, password: str, caregiver_id: int, client_id: int,
                 tag: str, visit_id: int) -> None:
        self.api, self.ident, self.password = api, ident, password
        self.caregiver_id, self.client_id, self.tag, self.visit_id = (
            caregiver_id, client_id, tag, visit_id)
        self.headers = basic(ident, password)

    def get(self, path: str, **kw):
        return self.api.get("/gw/v1" + path, headers={**self.headers, **kw.pop("headers", {})},
                            **kw)

    def post(self, path: str, **kw):
        return self.api.post("/gw/v1" + path, headers={**self.headers,
                                                       **kw.pop("headers", {})}, **kw)


def enrol_phone(api, ident: str = "phone-alice", caregiver: str = "Alice Martin",
                client_name: str = "Mme Jeanne Durand") -> Phone:
    """Register a phone for `caregiver`, enrol it with a one-time token, and plan a visit of
    that caregiver at `client_name` starting five minutes ago."""
    people = api.get("/api/v1/caregivers", params={"limit": 100}).json()["items"]
    caregiver_id = next(p["id"] for p in people if p["name"] == caregiver)
    clients = api.get("/api/v1/clients", params={"limit": 100}).json()["items"]
    client_id = next(c["id"] for c in clients if c["name"] == client_name)
    tag = api.get("/api/v1/badges", params={"client_id": client_id,
                                             "kind": "client_tag"}).json()["items"][0]["uid"]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    visit = api.post("/api/v1/visits", json={
        "client_id": client_id, "caregiver_id": caregiver_id,
        "planned_start": (now - timedelta(minutes=5)).isoformat(),
        "planned_end": (now + timedelta(minutes=55)).isoformat()})
    assert visit.status_code == 201, visit.text
    r = api.post("/api/v1/devices", json={"ident": ident, "kind": "phone",
                                          "caregiver_id": caregiver_id})
    assert r.status_code == 201, r.text
    token = api.post(f"/api/v1/devices/{ident}/enrolment").json()["token"]
    creds = api.post("/api/v1/enrol", json={"token": token}, headers={"Authorization": ""})
    assert creds.status_code == 200, creds.text
    return Phone(api, ident, creds.json()["password"], caregiver_id, client_id, tag,
                 visit.json()["id"])


@pytest.fixture
def phone(fleet_api) -> Phone:
    return enrol_phone(fleet_api)
