"""Console pages for funders and funding plans, and the client form's new fields."""
from __future__ import annotations

from sqlalchemy import select

from fleet.models import AuditLog, Client, Funder, FundingPlan
from tests.console.conftest import csrf_of, form_id_of


def test_funders_and_plans_pages(as_role, db, demo):
    m = as_role("manager")
    page = m.get("/funders")
    assert page.status_code == 200 and "<h1>Funders</h1>" in page.text
    assert "no SIRET" in page.text
    form = m.get("/funders/new").text
    data = {"csrf": csrf_of(form), "form_id": form_id_of(form), "kind": "APA",
            "name": "Conseil départemental du Val", "identifier": "CD94 APA", "active": "on"}
    r = m.post("/funders", data=data, follow_redirects=False)
    assert r.status_code == 422 and "identifier" in r.text  # a space: refused, form kept
    assert 'value="Conseil départemental du Val"' in r.text
    r = m.post("/funders", data={**data, "identifier": "CD94-APA"}, follow_redirects=False)
    assert r.status_code == 303
    # the same form sent twice makes one funder
    r = m.post("/funders", data={**data, "identifier": "CD94-APA"}, follow_redirects=False)
    assert r.status_code == 303 and "already" in r.headers["location"]
    with db() as s:
        funder = s.scalars(select(Funder)).one()
        client = s.scalars(select(Client).order_by(Client.id)).first()
        assert s.scalar(select(AuditLog.role).where(
            AuditLog.target == f"funder:{funder.id}")) == "manager"
    assert "CD94-APA" in m.get("/funders").text
    form = m.get(f"/funders/{funder.id}").text
    r = m.post(f"/funders/{funder.id}", data={
        "csrf": csrf_of(form), "form_id": form_id_of(form), "kind": "APA",
        "name": "CD du Val", "identifier": "CD94-APA", "active": "on"},
        follow_redirects=False)
    assert r.status_code == 303

    # a plan from the client's page
    client_page = m.get(f"/planning/clients/{client.id}").text
    assert f'href="/funders/plans?client={client.id}"' in client_page
    form = m.get(f"/funders/plans/new?client={client.id}").text
    assert f'<option value="{client.id}" selected>' in form
    plan = {"csrf": csrf_of(form), "form_id": form_id_of(form), "client_id": str(client.id),
            "funder_id": str(funder.id), "service_id": "", "reference": "APA-0001",
            "beneficiary_ref": "", "minutes_per_month": "600", "valid_from": "2026-12-01",
            "valid_to": "2026-11-01"}
    r = m.post("/funders/plans", data=plan, follow_redirects=False)
    assert r.status_code == 422 and "before it starts" in r.text
    r = m.post("/funders/plans", data={**plan, "valid_to": ""}, follow_redirects=False)
    assert r.status_code == 303
    listing = m.get(f"/funders/plans?client={client.id}").text
    assert "APA-0001" in listing and "CD du Val" in listing
    with db() as s:
        saved = s.scalars(select(FundingPlan)).one()
    assert saved.minutes_per_month == 600 and saved.valid_to is None
    # an overlapping second plan is refused with the first one named
    form = m.get("/funders/plans/new").text
    r = m.post("/funders/plans", data={**plan, "csrf": csrf_of(form),
                                       "form_id": form_id_of(form), "reference": "APA-0002",
                                       "valid_from": "2027-01-01", "valid_to": ""},
               follow_redirects=False)
    assert r.status_code == 409 and "APA-0001" in r.text
    form = m.get(f"/funders/plans/{saved.id}").text
    r = m.post(f"/funders/plans/{saved.id}", data={"csrf": csrf_of(form), "delete": "1"},
               follow_redirects=False)
    assert r.status_code == 303
    with db() as s:
        assert s.scalars(select(FundingPlan)).all() == []


def test_funders_need_a_planner_and_csrf(as_role):
    t = as_role("technician")
    assert t.get("/funders").status_code == 403
    m = as_role("manager")
    r = m.post("/funders", data={"csrf": "forged", "kind": "APA", "name": "X"})
    assert r.status_code == 403
    assert m.get("/funders/999").status_code == 404


def test_client_form_has_postcode_city_birth_date(as_role, db):
    m = as_role("manager")
    form = m.get("/planning/clients/new").text
    base = {"csrf": csrf_of(form), "form_id": form_id_of(form), "name": "Mme Roux",
            "address": "3 rue Haute", "postcode": "69003", "city": "Lyon",
            "birth_date": "14/07/1931", "active": "on"}
    r = m.post("/planning/clients", data=base, follow_redirects=False)
    assert r.status_code == 422 and "not a date" in r.text
    r = m.post("/planning/clients", data={**base, "birth_date": "1931-07-14"},
               follow_redirects=False)
    assert r.status_code == 303
    with db() as s:
        roux = s.scalars(select(Client).where(Client.name == "Mme Roux")).one()
    assert (roux.postcode, roux.city, roux.birth_date.isoformat()) == ("69003", "Lyon",
                                                                       "1931-07-14")
    assert 'value="1931-07-14"' in m.get(f"/planning/clients/{roux.id}").text
