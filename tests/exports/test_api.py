"""/api/v1/funders, /api/v1/funding-plans and /api/v1/exports/*: roles, scoping, rules, files."""
from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from fleet.exports import esppadom
from fleet.keys import create_api_key
from fleet.models import AuditLog, Organisation

SCHEMA = etree.XMLSchema(etree.parse(str(esppadom.SCHEMA)))


@pytest.fixture
def http(database_url, session, office):
    """as_key(role, own_org=True) -> a TestClient with an API key of that role."""
    from fleet.api.app import create_app
    from fleet.config import Settings

    other = Organisation(name="Autre agence", siret="98765432100019")
    session.add(other)
    session.flush()
    office.other = other
    keys = {(role, scoped): create_api_key(session, role, f"{role}-{scoped}",
                                           office.org.id if scoped else None)
            for role in ("admin", "manager", "technician") for scoped in (True, False)}
    keys[("manager", "other")] = create_api_key(session, "manager", "other", other.id)
    session.commit()
    app = create_app(Settings(database_url=database_url))
    clients = []

    def as_key(role: str, scoped=True) -> TestClient:
        c = TestClient(app)
        c.headers["Authorization"] = f"Bearer {keys[(role, scoped)]}"
        clients.append(c)
        return c
    yield as_key
    for c in clients:
        c.close()


def test_funders_crud_rules_and_roles(http, office, session):
    m = http("manager")
    r = m.post("/api/v1/funders", json={"kind": "APA", "name": "CD 93", "identifier": "CD93"})
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    assert r.json()["organisation_id"] == office.org.id
    assert m.post("/api/v1/funders", json={"kind": "APA", "name": "CD 93"}).status_code == 409
    r = m.post("/api/v1/funders", json={"kind": "APA", "name": "CD 92",
                                        "identifier": "CD 92 APA"})
    assert r.status_code == 422 and "identifier" in r.json()["detail"]
    assert m.post("/api/v1/funders", json={"kind": "XYZ", "name": "X"}).status_code == 422
    assert http("technician").post("/api/v1/funders", json={
        "kind": "AM", "name": "CPAM 2"}).status_code == 403
    r = m.patch(f"/api/v1/funders/{fid}", json={"identifier": "CD93-APA", "active": False})
    assert r.status_code == 200 and r.json()["identifier"] == "CD93-APA"
    names = [f["name"] for f in m.get("/api/v1/funders").json()["items"]]
    assert "CD 93" in names and len(names) == 4
    assert m.get("/api/v1/funders", params={"active": True}).json()["total"] == 3
    # another agency's key sees none of them, and cannot read or change one
    o = http("manager", "other")
    assert o.get("/api/v1/funders").json()["total"] == 0
    assert o.get(f"/api/v1/funders/{fid}").status_code == 404
    assert o.patch(f"/api/v1/funders/{fid}", json={"name": "x"}).status_code == 404
    session.expire_all()
    actions = [(a.action, a.target) for a in session.query(AuditLog).filter(
        AuditLog.target == f"funder:{fid}").order_by(AuditLog.id)]
    assert actions == [("create", f"funder:{fid}"), ("update", f"funder:{fid}")]


def test_funding_plans_rules(http, office):
    m = http("manager")
    durand = office.clients[0]
    apa = office.funders["APA"]
    base = {"client_id": durand.id, "funder_id": office.funders["AM"].id,
            "reference": "AM-2026-5", "valid_from": "2026-03-01", "valid_to": "2026-06-30"}
    r = m.post("/api/v1/funding-plans", json=base)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    # overlapping the same client, funder and service
    r = m.post("/api/v1/funding-plans", json={**base, "reference": "AM-2026-6",
                                              "valid_from": "2026-06-30", "valid_to": None})
    assert r.status_code == 409 and "already covers" in r.json()["detail"]
    # the next day is fine, and so is a plan for one service only
    assert m.post("/api/v1/funding-plans", json={**base, "reference": "AM-2026-6",
                                                 "valid_from": "2026-07-01",
                                                 "valid_to": None}).status_code == 201
    assert m.post("/api/v1/funding-plans", json={
        **base, "reference": "AM-LEV", "service_id": office.service.id}).status_code == 201
    r = m.post("/api/v1/funding-plans", json={**base, "valid_from": "2026-07-01",
                                              "valid_to": "2026-06-01"})
    assert r.status_code == 422 and "before it starts" in r.json()["detail"]
    r = m.post("/api/v1/funding-plans", json={**base, "reference": "with space"})
    assert r.status_code == 422
    # a funder of another agency, a client of another agency
    o = http("manager", "other")
    r = o.post("/api/v1/funders", json={"kind": "APA", "name": "CD 13", "identifier": "CD13"})
    foreign = r.json()["id"]
    r = m.post("/api/v1/funding-plans", json={**base, "funder_id": foreign})
    assert r.status_code == 422 and "not found in this agency" in r.json()["detail"]
    assert o.post("/api/v1/funding-plans", json={**base, "funder_id": foreign}
                  ).status_code == 403
    r = m.patch(f"/api/v1/funding-plans/{pid}", json={"valid_to": "2026-07-15"})
    assert r.status_code == 409  # would overlap AM-2026-6
    r = m.patch(f"/api/v1/funding-plans/{pid}", json={"minutes_per_month": 1200,
                                                      "beneficiary_ref": "B-1"})
    assert r.status_code == 200 and r.json()["minutes_per_month"] == 1200
    assert m.get(f"/api/v1/funding-plans/{pid}").json()["valid_to"] == "2026-06-30"
    listed = m.get("/api/v1/funding-plans", params={"client_id": durand.id}).json()
    assert {p["reference"] for p in listed["items"]} == {"APA-2026-001", "AM-2026-5",
                                                         "AM-2026-6", "AM-LEV"}
    assert m.get("/api/v1/funding-plans", params={"funder_id": apa.id}).json()["total"] == 1
    assert http("technician").delete(f"/api/v1/funding-plans/{pid}").status_code == 403
    assert m.delete(f"/api/v1/funding-plans/{pid}").status_code == 204
    assert m.get(f"/api/v1/funding-plans/{pid}").status_code == 404


def test_clients_carry_postcode_city_and_birth_date(http, office):
    m = http("manager")
    r = m.post("/api/v1/clients", json={"name": "Mme Roux", "postcode": "69003",
                                        "city": "Lyon", "birth_date": "1931-07-14"})
    assert r.status_code == 201
    assert (r.json()["postcode"], r.json()["city"], r.json()["birth_date"]) == \
        ("69003", "Lyon", "1931-07-14")
    r = m.patch(f"/api/v1/clients/{r.json()['id']}", json={"city": "Villeurbanne"})
    assert r.json()["city"] == "Villeurbanne"
    assert m.post("/api/v1/clients", json={"name": "X", "birth_date": "31/07/1931"}
                  ).status_code == 422


def _month(office, session):
    durand, petit = office.clients
    alice = office.carers[0]
    office.visit(durand, alice, "2026-11-23", "09:00", arrival="09:00", departure="10:05",
                 retained=("09:00", "10:00"), km=7)
    office.visit(petit, alice, "2026-11-23", "11:00", arrival="11:00", departure="11:30",
                 code="COD", retained=("11:00", "12:00"))
    session.commit()


def test_esppadom_export_over_http(http, office, session):
    _month(office, session)
    m = http("manager")
    r = m.get("/api/v1/exports/esppadom-delivery",
              params={"from": "2026-11-01", "to": "2026-11-30"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert r.headers["content-disposition"].startswith('attachment; filename="SAAD449-202611-ALL-')
    doc = etree.fromstring(r.content)
    SCHEMA.assertValid(doc)
    assert len(doc) == 2
    assert b'listAgencyName="EDESS">COD</ram:TypeCode>' in r.content
    r = m.get("/api/v1/exports/esppadom-delivery", params={
        "from": "2026-11-01", "to": "2026-11-30", "funder": office.funders["PCH"].id})
    assert len(etree.fromstring(r.content)) == 1
    assert "-PCH-" in r.headers["content-disposition"]
    # an empty range: a valid, empty file
    r = m.get("/api/v1/exports/esppadom-delivery", params={"from": "2026-06-01",
                                                           "to": "2026-06-30"})
    assert r.status_code == 200 and len(etree.fromstring(r.content)) == 0
    # an admin key of no organisation names one
    a = http("admin", False)
    assert a.get("/api/v1/exports/esppadom-delivery", params={
        "from": "2026-11-01", "to": "2026-11-30"}).status_code == 422
    assert a.get("/api/v1/exports/esppadom-delivery", params={
        "from": "2026-11-01", "to": "2026-11-30",
        "organisation_id": office.org.id}).status_code == 200
    session.expire_all()
    assert session.query(AuditLog).filter(AuditLog.action == "export").count() == 4


def test_export_errors_are_4xx_and_nothing_is_sent(http, office, session):
    _month(office, session)
    m = http("manager")
    pch = office.funders["PCH"]
    r = m.patch(f"/api/v1/funders/{pch.id}", json={"identifier": ""})
    assert r.status_code == 200
    r = m.get("/api/v1/exports/esppadom-delivery", params={"from": "2026-11-01",
                                                           "to": "2026-11-30"})
    assert r.status_code == 422
    assert f"funder {pch.id} (CD 94 PCH, PCH)" in r.json()["detail"]
    assert "content-disposition" not in r.headers
    office.org.siret = ""
    session.commit()
    r = m.get("/api/v1/exports/esppadom-delivery", params={"from": "2026-11-01",
                                                           "to": "2026-11-30"})
    assert r.status_code == 422 and "SIRET" in r.json()["detail"]
    for params in ({"from": "2026-11-30", "to": "2026-11-01"}, {"from": "yesterday",
                                                                "to": "2026-11-01"},
                   {"to": "2026-11-01"}):
        assert m.get("/api/v1/exports/payroll", params=params).status_code == 422
    assert m.get("/api/v1/exports/payroll", params={"from": "2026-11-01", "to": "2026-11-30",
                                                    "dialect": "tsv"}).status_code == 422
    assert m.get("/api/v1/exports/billing", params={"from": "2026-11-01", "to": "2026-11-30",
                                                    "funder": 999}).status_code == 404
    assert http("technician").get("/api/v1/exports/payroll", params={
        "from": "2026-11-01", "to": "2026-11-30"}).status_code == 403


def test_payroll_and_billing_over_http(http, office, session):
    _month(office, session)
    m = http("manager")
    r = m.get("/api/v1/exports/payroll", params={"from": "2026-11-01", "to": "2026-11-30",
                                                 "dialect": "excel-fr"})
    assert r.status_code == 200
    assert r.headers["content-disposition"] == \
        f'attachment; filename="payroll-org{office.org.id}-20261101_20261130.csv"'
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert (rows[0]["period"], rows[0]["raw_hours"], rows[0]["retained_hours"],
            rows[0]["km"]) == ("day", "1,58", "2,00", "7")
    r = m.get("/api/v1/exports/billing", params={"from": "2026-11-01", "to": "2026-11-30"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["client"], x["order_reference"], x["retained_hours"]) for x in rows] == [
        ("Mme Durand", "APA-2026-001", "1.00"), ("M. Petit", "PCH-77", "1.00")]
