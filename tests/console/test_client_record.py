"""The client record pages of the console: managers only, never cached, a wrong value shows
the form again with what was typed; fields retired or shown to caregivers from /planning/fields
(fleet.client_record, shared with the API)."""
from __future__ import annotations

from sqlalchemy import select

from fleet.models import Client, ClientField
from tests.console.conftest import csrf_of


def test_record_page_saves_checks_and_is_for_managers(as_role, db):
    with db() as s:
        client = s.scalars(select(Client).order_by(Client.id)).first()
    c = as_role("manager")
    url = f"/planning/clients/{client.id}/record"
    page = c.get(url)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    r = c.post(url, data={"csrf": csrf_of(page.text), "access_code": "B55",
                          "family_contacts": "Marc; fils; pas un numéro"})
    assert r.status_code == 422 and "is not a phone number" in r.text and 'value="B55"' in r.text
    r = c.post(url, data={"csrf": csrf_of(page.text), "access_code": "B55",
                          "family_contacts": "Marc; fils; 06 12 34 56 78\nLéa;;+33 4 78 00 00 00"})
    assert r.status_code == 200 and "Saved" in r.text
    with db() as s:
        saved = s.get(Client, client.id)
        assert saved.access_code == "B55" and [f["name"] for f in saved.family_contacts] == [
            "Marc", "Léa"]
    assert as_role("technician").get(url).status_code == 403
    assert c.get("/planning/clients/99999/record").status_code == 404


def test_fields_are_defined_shown_to_caregivers_and_retired(as_role, db):
    c = as_role("admin")
    page = c.get("/planning/fields").text
    r = c.post("/planning/fields", data={"csrf": csrf_of(page), "label": "GIR",
                                         "kind": "choice", "choices": "only one",
                                         "visible_to": "office"})
    assert r.status_code == 422 and "2 to 20 options" in r.text
    r = c.post("/planning/fields", data={"csrf": csrf_of(page), "label": "GIR",
                                         "kind": "choice", "choices": "1\n2\n3\n4\n5\n6",
                                         "visible_to": "office"})
    assert "Created" in r.text and 'data-field="gir"' in r.text
    with db() as s:
        field = s.scalars(select(ClientField)).one()
    c.post(f"/planning/fields/{field.id}", data={"csrf": csrf_of(page),
                                                 "visible_to": "caregivers"})
    c.post(f"/planning/fields/{field.id}", data={"csrf": csrf_of(page), "active": "0"})
    with db() as s:
        field = s.get(ClientField, field.id)
        assert (field.visible_to, field.active, field.kind) == ("caregivers", False, "choice")
