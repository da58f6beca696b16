"""The client record (fleet.client_record) through the API and the phone's planning: codes,
notes, family contacts and the agency's fields reach the phone of a caregiver who visits the
client today, never an office-only field, never a client of another day; a wrong value is a 422
naming it and changes nothing."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from fleet.db import make_engine, session_factory
from fleet.models import AuditLog


def _fields(api):
    org = api.get("/api/v1/organisations").json()["items"][0]["id"]
    made = {}
    for body in ({"label": "Allergies", "kind": "text", "visible_to": "caregivers"},
                 {"label": "GIR", "kind": "choice", "choices": ["1", "2", "3", "4", "5", "6"],
                  "visible_to": "caregivers"},
                 {"label": "Dernière visite médecin", "kind": "date",
                  "visible_to": "caregivers"},
                 {"label": "Reste à charge", "kind": "number"}):
        r = api.post("/api/v1/client-fields", json={**body, "organisation_id": org})
        assert r.status_code == 201, r.text
        made[body["label"]] = r.json()
    return made


RECORD = {"access_code": "A1234", "key_box": "à gauche de la porte, code 4321",
          "care_notes": "Ne pas ouvrir les volets.\nEau gazeuse uniquement.",
          "family_contacts": [{"name": "Marc Durand", "relation": "fils",
                               "phone": "06 12 34 56 78"}]}


def test_the_record_reaches_todays_phone_and_office_fields_never_do(phone, fleet_api, demo):
    f = _fields(fleet_api)
    assert [x["key"] for x in f.values()] == ["allergies", "gir", "derniere_visite_medecin",
                                               "reste_a_charge"]
    custom = {f["Allergies"]["key"]: "pénicilline", f["GIR"]["key"]: "4",
              f["Dernière visite médecin"]["key"]: "02/11/2026",
              f["Reste à charge"]["key"]: "12,50"}
    r = fleet_api.put(f"/api/v1/clients/{phone.client_id}/record",
                      json={**RECORD, "custom": custom})
    assert r.status_code == 200, r.text
    got = fleet_api.get(f"/api/v1/clients/{phone.client_id}/record").json()
    assert got["access_code"] == "A1234" and got["family_contacts"][0]["relation"] == "fils"
    assert got["custom"] == {f["Allergies"]["key"]: "pénicilline", f["GIR"]["key"]: "4",
                             f["Dernière visite médecin"]["key"]: "2026-11-02",
                             f["Reste à charge"]["key"]: 12.5}
    body = phone.get("/config")
    assert body.status_code == 200
    record = body.json()["clients"][str(phone.client_id)]["record"]
    assert record == {"access_code": "A1234", "key_box": "à gauche de la porte, code 4321",
                      "notes": RECORD["care_notes"], "family": RECORD["family_contacts"],
                      "fields": [["Allergies", "pénicilline"], ["GIR", "4"],
                                 ["Dernière visite médecin", "02/11/2026"]]}
    assert "Reste à charge" not in body.text and "12.5" not in body.text  # office only
    # the change is audited by name, never by value
    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        entry = s.scalars(select(AuditLog).where(
            AuditLog.action == "client_record")).one()
    engine.dispose()
    assert entry.target == f"client:{phone.client_id}" and "A1234" not in json.dumps(
        entry.detail)
    # shown to caregivers, then for the office only: it leaves the phone at its next sync
    r = fleet_api.patch(f"/api/v1/client-fields/{f['Allergies']['id']}",
                        json={"visible_to": "office"})
    assert r.status_code == 200
    record = phone.get("/config").json()["clients"][str(phone.client_id)]["record"]
    assert [label for label, _ in record["fields"]] == ["GIR", "Dernière visite médecin"]


def test_a_client_visited_another_day_sends_no_record(phone, fleet_api):
    org = fleet_api.get("/api/v1/organisations").json()["items"][0]["id"]
    r = fleet_api.post("/api/v1/clients", json={"name": "Mme Nouvelle", "organisation_id": org,
                                                "address": "1 rue Neuve, Lyon"})
    assert r.status_code == 201, r.text
    other = r.json()["id"]
    assert fleet_api.put(f"/api/v1/clients/{other}/record",
                         json={"access_code": "9999"}).status_code == 200
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=3)
    r = fleet_api.post("/api/v1/visits", json={
        "client_id": other, "caregiver_id": phone.caregiver_id,
        "planned_start": start.isoformat(),
        "planned_end": (start + timedelta(hours=1)).isoformat()})
    assert r.status_code == 201, r.text
    body = phone.get("/config")
    clients = body.json()["clients"]
    assert str(other) in clients and "record" not in clients[str(other)]
    assert "9999" not in body.text


def test_wrong_values_are_refused_and_change_nothing(phone, fleet_api):
    f = _fields(fleet_api)
    url = f"/api/v1/clients/{phone.client_id}/record"
    assert fleet_api.put(url, json=RECORD).status_code == 200
    for custom, why in (({f["Reste à charge"]["key"]: "beaucoup"}, "is not a number"),
                        ({f["GIR"]["key"]: "7"}, "is not one of"),
                        ({f["Dernière visite médecin"]["key"]: "31/02/2026"}, "is not a date"),
                        ({"nope": "x"}, "unknown field")):
        r = fleet_api.put(url, json={"access_code": "CHANGED", "custom": custom})
        assert r.status_code == 422 and why in r.json()["detail"], (custom, r.text)
    r = fleet_api.put(url, json={"family_contacts": [{"name": "X", "phone": "appelle-moi"}]})
    assert r.status_code == 422 and "is not a phone number" in r.json()["detail"]
    r = fleet_api.put(url, json={"family_contacts": [RECORD["family_contacts"][0]] * 7})
    assert r.status_code == 422
    assert fleet_api.get(url).json()["access_code"] == "A1234"
    org = fleet_api.get("/api/v1/organisations").json()["items"][0]["id"]
    for body in ({"label": "x", "kind": "colour"}, {"label": "x", "kind": "choice",
                                                     "choices": ["only one"]}):
        r = fleet_api.post("/api/v1/client-fields", json={**body, "organisation_id": org})
        assert r.status_code == 422, r.text
    assert fleet_api.get("/api/v1/clients/99999/record").status_code == 404
