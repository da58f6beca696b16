"""The console's absences page (approve, refuse with a reason, record, the visits to replace on
the page, the planning and the board) and the card pages (details, photo checks, revoke), and
the public /verify/<token> page: valid or not, the name and the agency, nothing else."""
from __future__ import annotations

import html
import re
from datetime import date, datetime, timedelta, timezone

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fleet import absences
from fleet.demo import DEMO_ORG
from fleet.models import Absence, AuditLog, Caregiver, CaregiverCard, Client, Visit
from tests.console.conftest import csrf_of, form_id_of

DAY = date(2030, 1, 7)


def _alice_and_visit(db, org_id: int) -> tuple[int, int]:
    with db() as s:
        alice = s.scalars(select(Caregiver).where(Caregiver.name == "Alice Martin")).one()
        client = s.scalars(select(Client).where(Client.organisation_id == org_id)).first()
        start = datetime(2030, 1, 7, 8, 0, tzinfo=timezone.utc)
        v = Visit(organisation_id=org_id, client_id=client.id, caregiver_id=alice.id,
                  planned_start=start, planned_end=start + timedelta(hours=1))
        s.add(v)
        s.commit()
        return alice.id, v.id


def _audit(db) -> int:
    with db() as s:
        return s.scalar(select(func.count()).select_from(AuditLog))


def test_approve_a_request_and_its_visit_shows_to_replace(as_role, db, demo):
    alice, visit = _alice_and_visit(db, demo[1]["organisation_id"])
    with db() as s:
        a = absences.create(s, s.get(Caregiver, alice), "leave", absences.period(
            "Europe/Paris", DAY, DAY), "mariage", who="device:phone-alice", role="device")
        s.commit()
        absence_id = a.id
    m = as_role("manager")
    page = m.get("/absences")
    assert page.status_code == 200 and "mariage" in page.text
    assert f'data-absence="{absence_id}" data-state="requested"' in page.text
    token = csrf_of(page.text)
    assert m.post(f"/absences/{absence_id}/approve", data={"csrf": "wrong"}).status_code == 403
    r = m.post(f"/absences/{absence_id}/approve", data={"csrf": token})
    assert r.status_code == 200 and "Absence approved" in r.text
    assert f'<tr data-visit="{visit}" data-absence="{absence_id}">' in r.text
    planning = m.get("/planning", params={"day": str(DAY)})
    row = re.search(rf'<tr data-visit="{visit}".*?</tr>', planning.text, re.S).group(0)
    assert "to replace" in row and "à remplacer" not in row
    board = m.get("/board/rows", params={"day": str(DAY)})
    row = re.search(rf'data-visit="{visit}".*?</tr>', board.text, re.S).group(0)
    assert "to replace" in row
    with db() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.target == f"absence:{absence_id}",
                                                 AuditLog.action == "absence_approve")).one()
        assert entry.who == "user:manager@agency.fr"


def test_refuse_needs_a_reason_record_refuses_overlap_and_bad_dates(as_role, db, demo):
    alice, _ = _alice_and_visit(db, demo[1]["organisation_id"])
    with db() as s:
        a = absences.create(s, s.get(Caregiver, alice), "sick", absences.period(
            "Europe/Paris", DAY, DAY), "", who="device:phone-alice", role="device")
        s.commit()
        absence_id = a.id
    m = as_role("manager", "fr")  # the refusals in French
    page = m.get("/absences").text
    token = csrf_of(page)
    before = _audit(db)
    r = m.post(f"/absences/{absence_id}/refuse", data={"csrf": token, "reason": "  "})
    assert r.status_code == 422 and "un refus doit être motivé" in r.text
    for form, words in (
            ({"caregiver_id": str(alice), "kind": "leave", "first_day": str(DAY)},
             "chevauche"),
            ({"caregiver_id": str(alice), "kind": "leave", "first_day": "2030-02-10",
              "last_day": "2030-02-09"}, "précède"),
            ({"caregiver_id": str(alice), "kind": "leave", "first_day": "2030-02-10",
              "start_time": "12:00", "end_time": "09:00"}, "la fin ne suit pas"),
            ({"caregiver_id": "999999", "kind": "leave", "first_day": "2030-02-10"},
             "choisissez"),
            ({"caregiver_id": str(alice), "kind": "leave", "first_day": "10/02/2030"},
             "n'est pas une date")):
        r = m.post("/absences", data={"csrf": token, "form_id": form_id_of(page), **form})
        assert r.status_code in (409, 422) and words in html.unescape(r.text), (form,
                                                                              r.text[-800:])
    assert _audit(db) == before
    r = m.post(f"/absences/{absence_id}/refuse", data={"csrf": token, "reason": "remplaçant "
                                                       "introuvable"})
    assert r.status_code == 200 and "Absence refusée" in r.text
    once = {"csrf": token, "form_id": form_id_of(page), "caregiver_id": str(alice),
            "kind": "training", "first_day": "2030-02-10", "last_day": "2030-02-11",
            "note": "SST"}
    r = m.post("/absences", data=once)
    assert r.status_code == 200 and "Absence enregistrée" in r.text
    r = m.post("/absences", data=once)  # the same form again (back button, double click)
    assert r.status_code == 200 and "Déjà enregistrée" in r.text
    r = m.post("/absences", data={**once, "form_id": ""})
    assert r.status_code == 422 and "formulaire incomplet" in r.text
    with db() as s:
        states = sorted(a.state for a in s.scalars(select(Absence)))
    assert states == ["approved", "refused"]
    tech = as_role("technician")
    assert tech.get("/absences").status_code == 403


def test_card_details_photo_and_the_public_verify_page(app, as_role, db, demo):
    alice, _ = _alice_and_visit(db, demo[1]["organisation_id"])
    m = as_role("manager")
    page = m.get(f"/caregivers/{alice}/card")
    assert page.status_code == 200 and "No card yet" in page.text
    token = csrf_of(page.text)
    r = m.post(f"/caregivers/{alice}/card", data={"csrf": token, "number": "CP-2030-001",
                                                  "title": "Auxiliaire de vie",
                                                  "valid_from": "2026-01-01",
                                                  "valid_until": "2025-12-31"})
    assert r.status_code == 422 and "the card ends before it starts" in r.text
    r = m.post(f"/caregivers/{alice}/card", data={"csrf": token, "number": "CP-2030-001",
                                                  "title": "Auxiliaire de vie",
                                                  "valid_from": "2026-01-01",
                                                  "valid_until": "2030-12-31"})
    assert r.status_code == 200 and 'id="card-qr"' in r.text and "<svg" in r.text
    url = re.search(r'<code id="verify-url">([^<]+)</code>', r.text).group(1)
    path = "/verify/" + url.rsplit("/verify/", 1)[1]
    before = _audit(db)
    for name, raw, ctype, status in (
            ("x.png", b"<html><script>alert(1)</script>", "image/png", 415),
            ("big.jpg", b"\xff\xd8\xff" + b"\0" * (512 * 1024), "image/jpeg", 413)):
        r = m.post(f"/caregivers/{alice}/card/photo", data={"csrf": token},
                   files={"photo": (name, raw, ctype)})
        assert r.status_code == status, r.text[-500:]
        assert 'role="alert"' in r.text
    assert _audit(db) == before
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 200
    r = m.post(f"/caregivers/{alice}/card/photo", data={"csrf": token},
               files={"photo": ("../../etc/passwd", png, "text/plain")})
    assert r.status_code == 200 and 'src="data:image/png;base64,' in r.text

    public = TestClient(app)  # a browser with no session at all
    v = public.get(path)
    assert v.status_code == 200 and 'data-valid="1"' in v.text
    assert "Alice Martin" in v.text and DEMO_ORG in v.text
    assert "CP-2030-001" not in v.text and "data:image" not in v.text  # name and agency only
    assert v.headers["cache-control"] == "no-store"
    assert "noindex" in v.headers["x-robots-tag"]
    r = m.post(f"/caregivers/{alice}/card/revoke", data={"csrf": token, "why": "perdue"})
    assert r.status_code == 200 and "Card revoked" in r.text
    v = public.get(path)
    assert v.status_code == 404 and 'data-valid="0"' in v.text and "Alice" not in v.text
    with db() as s:
        s.get(Caregiver, alice).active = False
        card = s.scalars(select(CaregiverCard)).one()
        s.commit()
        fresh = card.token
    v = public.get(f"/verify/{fresh}")
    assert 'data-valid="0"' in v.text and "Alice Martin" in v.text
    assert public.get("/verify/%2e%2e%2fetc").status_code == 404
    public.close()
