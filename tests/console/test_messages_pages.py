"""The console's messages, inbox, call-backs and numbers pages (fleet.console.messages):
a manager writes to chosen caregivers, sees the receipts; a bad form is shown again with a
clear error and nothing is written; numbers are saved or refused whole; a call-back is marked
done (audited); technicians are kept out; CSRF is checked."""
from __future__ import annotations

from sqlalchemy import func, select

from fleet.models import AuditLog, CallbackRequest, Caregiver, EmergencyNumber, Message
from tests.console.conftest import csrf_of


def _people(db, org_id: int) -> list[int]:
    with db() as s:
        return list(s.scalars(select(Caregiver.id).where(Caregiver.organisation_id == org_id)
                              .order_by(Caregiver.id)))


def test_write_to_chosen_caregivers_and_see_the_receipts(as_role, db, demo):
    c = as_role("manager")
    ids = _people(db, demo[1]["organisation_id"])[:2]
    page = c.get("/messages")
    assert page.status_code == 200 and 'id="message-form"' in page.text
    r = c.post("/messages", data={"csrf": csrf_of(page.text), "to": "chosen",
                                  "caregiver": [str(i) for i in ids], "subject": "Canicule",
                                  "body": "Faites boire.\nFermez les volets.",
                                  "mandatory": "on"}, follow_redirects=True)
    assert r.status_code == 200 and "Message sent" in r.text
    assert r.text.count(">waiting<") == 2 and 'id="receipts"' in r.text
    with db() as s:
        m = s.scalars(select(Message)).one()
        assert m.mandatory and not m.everyone
        assert s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "message")) == 1
    listing = c.get("/messages").text
    assert "Canicule" in listing and "0 / 2" in listing


def test_a_bad_message_is_shown_again_with_its_error(as_role, db, demo):
    c = as_role("manager")
    token = csrf_of(c.get("/messages").text)
    r = c.post("/messages", data={"csrf": token, "to": "chosen", "subject": "Sans personne",
                                  "body": "texte"})
    assert r.status_code == 422 and "no recipient" in r.text
    assert 'value="Sans personne"' in r.text
    r = c.post("/messages", data={"csrf": token, "to": "everyone", "subject": "Vide",
                                  "body": "  "})
    assert r.status_code == 422 and "the message is empty" in r.text
    assert c.post("/messages", data={"csrf": "forged", "to": "everyone", "subject": "x",
                                     "body": "y"}).status_code == 403
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0


def test_numbers_saved_or_refused_whole(as_role, db, demo):
    c = as_role("manager")
    token = csrf_of(c.get("/numbers").text)
    labels = ["Astreinte", "SAMU", "", "", ""]
    numbers = ["06 12 34 56 78", "15", "", "", ""]
    r = c.post("/numbers", data={"csrf": token, "emergency_label": labels,
                                 "emergency_number": numbers, "office_label": ["Accueil"],
                                 "office_number": ["04 72 00 00 00"],
                                 "directory_colleagues": "on"}, follow_redirects=True)
    assert r.status_code == 200 and 'value="0612345678"' in r.text
    r = c.post("/numbers", data={"csrf": token, "emergency_label": ["Faux"],
                                 "emergency_number": ["rappelez-moi"]})
    assert r.status_code == 422 and "is not a phone number" in r.text
    with db() as s:
        rows = s.scalars(select(EmergencyNumber).order_by(EmergencyNumber.id)).all()
        assert [(x.kind, x.number) for x in rows] == [
            ("emergency", "0612345678"), ("emergency", "15"), ("office", "0472000000")]


def test_a_call_back_marked_done_leaves_the_queue(as_role, db, demo):
    ids = _people(db, demo[1]["organisation_id"])
    with db() as s:
        s.add(CallbackRequest(organisation_id=demo[1]["organisation_id"], caregiver_id=ids[0],
                              reason="Usager absent"))
        s.commit()
    c = as_role("manager")
    page = c.get("/callbacks")
    assert "Usager absent" in page.text and 'class="waiting">0 min' in page.text
    with db() as s:
        row_id = s.scalars(select(CallbackRequest.id)).one()
    r = c.post(f"/callbacks/{row_id}/take", data={"csrf": csrf_of(page.text)},
               follow_redirects=True)
    assert "Call-back done" in r.text and "No one is waiting" in r.text
    with db() as s:
        assert s.get(CallbackRequest, row_id).taken_by.startswith("user:manager@")
        assert s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "callback_taken")) == 1


def test_technicians_are_kept_out(as_role):
    c = as_role("technician")
    for path in ("/messages", "/messages/inbox", "/callbacks", "/numbers"):
        assert c.get(path).status_code == 403, path


def test_a_caregiver_s_work_phone_is_checked_on_the_caregiver_form(as_role, db, demo):
    from tests.console.conftest import form_id_of

    c = as_role("manager")
    with db() as s:
        g = s.scalars(select(Caregiver)).first()
    page = c.get(f"/planning/caregivers/{g.id}").text
    assert 'name="work_phone"' in page
    form = {"csrf": csrf_of(page), "form_id": form_id_of(page), "name": g.name,
            "active": "on", "work_phone": "pas un numéro"}
    r = c.post(f"/planning/caregivers/{g.id}", data=form)
    assert r.status_code == 422 and "is not a phone number" in r.text
    page = c.get(f"/planning/caregivers/{g.id}").text
    r = c.post(f"/planning/caregivers/{g.id}", data={
        **form, "csrf": csrf_of(page), "form_id": form_id_of(page),
        "work_phone": "07 00 00 00 01"}, follow_redirects=True)
    assert "Saved" in r.text
    with db() as s:
        assert s.get(Caregiver, g.id).work_phone == "0700000001"
