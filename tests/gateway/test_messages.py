"""Messages, the agency's numbers and call-backs through the real API and the device gateway
(fleet.messages, fleet.contacts, fleet.callbacks): a mandatory message reaches the phone and
its receipts show delivered, read, acknowledged; the caregiver's message lands in the inbox
with its e-mails queued, once however often the phone resends it; numbers are checked and
shipped with the planning; a call-back is queued, taken (audited) and shown taken on the
phone. Bad input: a clear error and nothing changed."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from fleet.db import make_engine, session_factory
from fleet.keys import create_api_key
from fleet.models import AuditLog, Caregiver, Message, Organisation, Outbox, User


def _org_key(db_url: str, org_id: int | None = None, name: str | None = None) -> str:
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        if name:
            org = Organisation(name=name)
            s.add(org)
            s.flush()
            s.add(Caregiver(organisation_id=org.id, name="Zoé Ailleurs"))
            org_id = org.id
        key = create_api_key(s, "manager", "messages test", organisation_id=org_id)
        s.commit()
    engine.dispose()
    return key


def _rows(db_url: str, model, *where):
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        out = list(s.scalars(sa.select(model).where(*where)))
    engine.dispose()
    return out


@pytest.fixture
def office(fleet_api, phone, demo):
    """The API as the demo agency's manager (a key of that organisation)."""
    org_id = _rows(demo[0], Caregiver, Caregiver.id == phone.caregiver_id)[0].organisation_id
    fleet_api.headers["Authorization"] = f"Bearer {_org_key(demo[0], org_id)}"
    return fleet_api


def test_a_mandatory_message_reaches_the_phone_with_its_receipts(office, phone, demo):
    r = office.post("/api/v1/messages", json={
        "subject": "Protocole canicule", "body": "Faites boire les usagers toutes les heures.",
        "mandatory": True, "caregiver_ids": [phone.caregiver_id]})
    assert r.status_code == 201, r.text
    sent = r.json()
    assert sent["counts"] == {"recipients": 1, "delivered": 0, "read": 0, "acknowledged": 0}
    assert [x["delivered_at"] for x in sent["receipts"]] == [None]

    inbox = phone.get("/inbox").json()
    (m,) = [x for x in inbox["messages"] if x["id"] == sent["id"]]
    assert m["mandatory"] is True and m["ack"] is None and "boire" in m["body"]
    got = office.get(f"/api/v1/messages/{sent['id']}").json()
    assert got["counts"]["delivered"] == 1 and got["receipts"][0]["read_at"] is None

    r = phone.post(f"/messages/{sent['id']}/read", json={"ack": True})
    assert r.status_code == 200 and r.json()["ack"]
    again = phone.post(f"/messages/{sent['id']}/read", json={"ack": True})
    assert again.json() == r.json(), "only the first acknowledgement counts"
    got = office.get(f"/api/v1/messages/{sent['id']}").json()
    (receipt,) = got["receipts"]
    assert receipt["name"] == "Alice Martin"
    assert receipt["delivered_at"] and receipt["read_at"] and receipt["acknowledged_at"]
    assert got["counts"] == {"recipients": 1, "delivered": 1, "read": 1, "acknowledged": 1}

    # a message of someone else is not this phone's
    other = phone.post("/messages/999999/read", json={"ack": True})
    assert other.status_code == 404 and other.json()["error"] == "not_found"


def test_everyone_means_the_agency_s_active_caregivers(office, phone, demo):
    r = office.post("/api/v1/messages", json={"subject": "Réunion", "body": "Jeudi 14 h",
                                                 "everyone": True})
    assert r.status_code == 201, r.text
    org_id = r.json()["organisation_id"]
    active = _rows(demo[0], Caregiver, Caregiver.organisation_id == org_id, Caregiver.active)
    assert r.json()["counts"]["recipients"] == len(active) >= 2


def test_bad_messages_are_refused_and_nothing_is_written(office, phone, demo):
    before = len(_rows(demo[0], Message))
    cases = [
        ({"subject": "", "body": "x", "caregiver_ids": [phone.caregiver_id]}, "subject"),
        ({"subject": "x", "body": "   ", "caregiver_ids": [phone.caregiver_id]}, "empty"),
        ({"subject": "x", "body": "y" * 4001, "caregiver_ids": [phone.caregiver_id]},
         "4000"),
        ({"subject": "x", "body": "y"}, "caregiver_ids or everyone"),
        ({"subject": "x", "body": "y", "caregiver_ids": [1], "everyone": True}, "one of"),
    ]
    for body, words in cases:
        r = office.post("/api/v1/messages", json=body)
        assert r.status_code == 422, (body, r.text)
        assert words in r.text, (words, r.text)
    # another agency's caregiver, with the demo agency's key: a clear 422, nothing written
    stranger = _org_key(demo[0], name="Autre Agence")
    theirs = _rows(demo[0], Caregiver, Caregiver.name == "Zoé Ailleurs")[0].id
    r = office.post("/api/v1/messages", json={
        "subject": "x", "body": "y", "caregiver_ids": [phone.caregiver_id, theirs]})
    assert r.status_code == 422 and f"caregiver {theirs} is not" in r.json()["detail"]
    assert len(_rows(demo[0], Message)) == before
    # and the other agency does not see the demo agency's messages
    office.post("/api/v1/messages", json={"subject": "a", "body": "b",
                                             "caregiver_ids": [phone.caregiver_id]})
    mine = office.get("/api/v1/messages")
    assert mine.status_code == 200 and len(mine.json()["items"]) == 1
    theirs_list = office.get("/api/v1/messages",
                                headers={"Authorization": f"Bearer {stranger}"})
    assert theirs_list.json()["items"] == []
    m_id = mine.json()["items"][0]["id"]
    assert office.get(f"/api/v1/messages/{m_id}",
                         headers={"Authorization": f"Bearer {stranger}"}).status_code == 404


def test_a_caregiver_s_message_lands_in_the_inbox_once_with_its_e_mails(office, phone,
                                                                       demo):
    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        org_id = s.get(Caregiver, phone.caregiver_id).organisation_id
        s.add(User(email="coord@agence.fr", role="manager", organisation_id=org_id))
        s.commit()
    engine.dispose()
    body = {"ref": "m-1", "subject": "Clé perdue", "body": "La boîte à clés est vide.",
            "visit": phone.visit_id}
    first = phone.post("/messages", json=body)
    assert first.status_code == 201, first.text
    again = phone.post("/messages", json=body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert [m["ref"] for m in phone.get("/inbox").json()["sent"]] == ["m-1"]
    inbox = office.get("/api/v1/messages", params={"direction": "to_office"}).json()
    (m,) = inbox["items"]
    assert m["caregiver_name"] == "Alice Martin" and m["visit_id"] == phone.visit_id
    mails = _rows(demo[0], Outbox, Outbox.dedupe_key.like(f"message:{m['id']}:%"))
    assert [x.recipient for x in mails] == ["coord@agence.fr"]
    assert "Clé perdue" in mails[0].subject and "boîte à clés" in mails[0].body

    for bad, code in [({**body, "ref": "m-2", "body": ""}, 422),
                      ({**body, "ref": "m-3", "subject": "s" * 201}, 422),
                      ({**body, "ref": "m-4", "visit": 999999}, 404)]:
        r = phone.post("/messages", json=bad)
        assert r.status_code == code, r.text
    assert len(office.get("/api/v1/messages",
                             params={"direction": "to_office"}).json()["items"]) == 1


def test_numbers_are_checked_and_shipped_with_the_planning(office, phone, demo):
    assert phone.get("/config").json()["contacts"]["emergency"] == [
        {"label": "Urgences (112)", "number": "112"}], "112 stays the fallback"
    good = [{"label": "Astreinte", "number": "+33 6 12 34 56 78"},
            {"label": "SAMU", "number": "15"}, {"label": "Police", "number": "17"},
            {"label": "Bureau", "number": "04.72.00.00.00"}, {"label": "Urgences", "number": "112"}]
    r = office.put("/api/v1/emergency-numbers", json={
        "emergency": good, "office": [{"label": "Secrétariat", "number": "0472000001"}],
        "directory_colleagues": True})
    assert r.status_code == 200, r.text
    assert r.json()["emergency"][0] == {"label": "Astreinte", "number": "+33612345678"}
    # colleagues' work numbers only, never the private ones, never one's own
    org_id = r.json()["organisation_id"]
    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        for c in s.scalars(sa.select(Caregiver).where(Caregiver.organisation_id == org_id)):
            c.phone, c.work_phone = "0600000000", f"07000000{c.id:02d}"
        s.commit()
    engine.dispose()
    book = phone.get("/config").json()["contacts"]
    assert book["emergency"][0]["number"] == "+33612345678" and len(book["emergency"]) == 5
    assert book["office"] == [{"label": "Secrétariat", "number": "0472000001"}]
    assert book["colleagues"] and all(x["number"].startswith("070") for x in book["colleagues"])
    assert "Alice Martin" not in [x["label"] for x in book["colleagues"]]

    for bad, words in [({"emergency": good + [{"label": "Sixième", "number": "18"}]},
                        "at most 5"),
                       ({"emergency": [{"label": "Faux", "number": "appelez-moi"}]},
                        "not a phone number"),
                       ({"emergency": [{"label": "", "number": "15"}]}, "label")]:
        r = office.put("/api/v1/emergency-numbers", json=bad)
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    kept = office.get("/api/v1/emergency-numbers").json()["emergency"]
    assert [x["label"] for x in kept] == [x["label"] for x in good], "nothing changed"
    audits = _rows(demo[0], AuditLog, AuditLog.action == "contacts")
    assert len(audits) == 1, "only the change that went through is in the audit"
    r = office.patch(f"/api/v1/caregivers/{phone.caregiver_id}",
                        json={"work_phone": "pas un numéro"})
    assert r.status_code == 422


def test_a_call_back_is_queued_taken_and_shown_taken(office, phone, demo):
    r = phone.post("/callbacks", json={"ref": "cb-1", "reason": "Usager absent"})
    assert r.status_code == 201 and r.json()["taken"] is None
    assert phone.post("/callbacks", json={"ref": "cb-1", "reason": "Usager absent"}
                      ).status_code == 200
    (waiting,) = office.get("/api/v1/callbacks").json()["items"]
    assert waiting["caregiver_name"] == "Alice Martin" and waiting["waiting_s"] >= 0
    assert waiting["reason"] == "Usager absent"
    r = office.post(f"/api/v1/callbacks/{waiting['id']}/take")
    assert r.status_code == 200 and r.json()["taken_at"]
    assert office.get("/api/v1/callbacks").json()["items"] == []
    assert [x["id"] for x in office.get("/api/v1/callbacks",
                                           params={"state": "taken"}).json()["items"]] == [
        waiting["id"]]
    (mine,) = phone.get("/inbox").json()["callbacks"]
    assert mine["ref"] == "cb-1" and mine["taken"]
    assert len(_rows(demo[0], AuditLog, AuditLog.action == "callback_taken")) == 1
    r = phone.post("/callbacks", json={"ref": "cb-2", "reason": "x" * 201})
    assert r.status_code == 422 and r.json()["error"] == "bad_message"
    assert office.post("/api/v1/callbacks/999999/take").status_code == 404


def test_roles_and_other_agencies_are_kept_out(office, phone, demo):
    technician = office.post("/api/v1/messages", headers={
        "Authorization": f"Bearer {office.keys['technician']}"}, json={
        "subject": "x", "body": "y", "everyone": True})
    assert technician.status_code == 403
    other = _org_key(demo[0], name="Autre Agence")
    other_org = _rows(demo[0], Organisation, Organisation.name == "Autre Agence")[0].id
    org_id = _rows(demo[0], Caregiver, Caregiver.id == phone.caregiver_id)[0].organisation_id
    for method, path, kw in [("post", "/api/v1/messages", {"json": {
            "organisation_id": org_id, "subject": "x", "body": "y", "everyone": True}}),
            ("put", "/api/v1/emergency-numbers", {"params": {"organisation_id": org_id},
                                                  "json": {"emergency": []}}),
            ("get", "/api/v1/callbacks", {"params": {"organisation_id": org_id}})]:
        r = getattr(office, method)(path, headers={"Authorization": f"Bearer {other}"}, **kw)
        assert r.status_code == 403, (path, r.text)
    assert phone.post("/callbacks", json={"ref": "cb-9"}).status_code == 201
    waiting = office.get("/api/v1/callbacks").json()["items"][0]["id"]
    r = office.post(f"/api/v1/callbacks/{waiting}/take",
                    headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 404 and other_org != org_id
    assert office.get("/api/v1/callbacks").json()["items"][0]["taken_at"] is None


def test_the_routes_are_in_the_openapi(fleet_api):
    paths = fleet_api.get("/openapi.json").json()["paths"]
    for p in ("/api/v1/messages", "/api/v1/messages/{message_id}", "/api/v1/emergency-numbers",
              "/api/v1/callbacks", "/api/v1/callbacks/{request_id}/take"):
        assert p in paths, p
