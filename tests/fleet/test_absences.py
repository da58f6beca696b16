"""Absences (fleet.absences) and the professional card (fleet.cards): the rules, and the API
under /api/v1/absences with its refusals, roles and tenancy; one run on PostgreSQL."""
from __future__ import annotations

from datetime import date, datetime, time, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fleet import absences, cards
from fleet.models import Absence, AuditLog, Caregiver, Client, Organisation, Visit

DAY = date(2030, 1, 7)  # a Monday, far from the demo's own planning


def _caregivers(api) -> dict[str, int]:
    return {c["name"]: c["id"] for c in api.get("/api/v1/caregivers",
                                                params={"limit": 100}).json()["items"]}


def _visit(api, caregiver_id: int, day: date, hhmm: str, hours: int = 1) -> int:
    client = api.get("/api/v1/clients", params={"limit": 1}).json()["items"][0]["id"]
    start = datetime.fromisoformat(f"{day}T{hhmm}:00+01:00")
    end = start.replace(hour=start.hour + hours)
    r = api.post("/api/v1/visits", json={"client_id": client, "caregiver_id": caregiver_id,
                                          "planned_start": start.isoformat(),
                                          "planned_end": end.isoformat()})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _audit_count(api) -> int:
    engine = api.app.state.engine
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(AuditLog)).scalar()


def test_period_whole_days_and_times_in_the_agency_zone():
    p = absences.period("Europe/Paris", DAY, date(2030, 1, 8))
    assert p.all_day and p.starts_at == datetime(2030, 1, 6, 23, 0, tzinfo=timezone.utc)
    assert p.ends_at == datetime(2030, 1, 8, 23, 0, tzinfo=timezone.utc)
    p = absences.period("Europe/Paris", DAY, DAY, time(9), time(12, 30))
    assert not p.all_day and p.starts_at.hour == 8 and p.ends_at.hour == 11
    for bad in ((DAY, date(2030, 1, 6), None, None), (DAY, DAY, time(12), time(9)),
                (DAY, DAY, time(9), None), (DAY, date(2031, 1, 8), None, None)):
        with pytest.raises(absences.AbsenceRefused) as e:
            absences.period("Europe/Paris", *bad)
        assert e.value.status == 422 and " · " in e.value.message
    with pytest.raises(absences.AbsenceRefused, match="changement d'heure"):
        absences.period("Europe/Paris", date(2030, 3, 31), date(2030, 3, 31), time(2, 30),
                        time(4))


def test_request_approve_and_the_covered_visits_are_to_replace(api):
    alice = _caregivers(api)["Alice Martin"]
    inside = _visit(api, alice, DAY, "09:00")
    outside = _visit(api, alice, date(2030, 1, 9), "09:00")
    with api.app.state.sessions() as s:
        caregiver = s.get(Caregiver, alice)
        a = absences.create(s, caregiver, "leave", absences.period(
            "Europe/Paris", DAY, date(2030, 1, 8)), "vacances", who="device:p1",
            role="device", request_key="k" * 16)
        s.commit()
        assert a.state == "requested" and absences.to_replace(s, caregiver.organisation_id) == []
        # the same request again (offline resend) is the same absence
        again = absences.create(s, caregiver, "leave", absences.period(
            "Europe/Paris", DAY, date(2030, 1, 8)), "vacances", who="device:p1",
            role="device", request_key="k" * 16)
        assert again.id == a.id
        absences.decide(s, a, True, "", who="user:m@x", role="manager")
        s.commit()
        rows = absences.to_replace(s, caregiver.organisation_id)
        assert [(v.id, ab.id) for v, ab in rows] == [(inside, a.id)]
        assert absences.to_replace_ids(s, [inside, outside]) == {inside: a.id}
        # reassigned to Bruno: no longer to replace
        s.get(Visit, inside).caregiver_id = _caregivers(api)["Bruno Leroy"]
        s.flush()
        assert absences.to_replace(s, caregiver.organisation_id) == []
        s.rollback()
        with pytest.raises(absences.AbsenceRefused) as e:
            absences.decide(s, a, False, "too late", who="user:m@x", role="manager")
        assert e.value.status == 409
        actions = [r.action for r in s.scalars(select(AuditLog).where(
            AuditLog.target == f"absence:{a.id}").order_by(AuditLog.id))]
        assert actions == ["absence_request", "absence_approve"]


def test_api_record_list_refuse_cancel_with_clear_refusals(api):
    people = _caregivers(api)
    alice, bruno = people["Alice Martin"], people["Bruno Leroy"]
    visit = _visit(api, alice, DAY, "14:00")
    r = api.post("/api/v1/absences", json={"caregiver_id": alice, "kind": "training",
                                           "first_day": str(DAY), "last_day": str(DAY),
                                           "start_time": "13:00", "end_time": "17:00"})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["state"] == "approved" and doc["visits_covered"] == [visit]
    assert doc["start_time"] == "13:00" and doc["first_day"] == str(DAY)
    todo = api.get("/api/v1/absences/to-replace").json()
    assert [i["visit_id"] for i in todo["items"]] == [visit]

    before = _audit_count(api)
    for body, status, words in (
            ({"caregiver_id": alice, "kind": "leave", "first_day": str(DAY),
              "last_day": str(DAY)}, 409, "overlaps"),
            ({"caregiver_id": bruno, "kind": "leave", "first_day": "2030-01-09",
              "last_day": "2030-01-08"}, 422, "before the first"),
            ({"caregiver_id": bruno, "kind": "holiday", "first_day": str(DAY),
              "last_day": str(DAY)}, 422, "kind"),
            ({"caregiver_id": bruno, "kind": "leave", "first_day": str(DAY),
              "last_day": str(DAY), "note": "x" * 501}, 422, "note"),
            ({"caregiver_id": 999999, "kind": "leave", "first_day": str(DAY),
              "last_day": str(DAY)}, 404, "caregiver")):
        r = api.post("/api/v1/absences", json=body)
        assert r.status_code == status, (body, r.text)
        assert words in r.text, r.text
    assert _audit_count(api) == before
    assert api.get("/api/v1/absences", params={"caregiver_id": bruno}).json()["total"] == 0

    with api.app.state.sessions() as s:
        asked = absences.create(s, s.get(Caregiver, bruno), "sick", absences.period(
            "Europe/Paris", DAY, DAY), "", who="device:p2", role="device")
        s.commit()
        asked_id = asked.id
    r = api.post(f"/api/v1/absences/{asked_id}/refuse", json={"reason": ""})
    assert r.status_code == 422 and "reason" in r.text
    r = api.post(f"/api/v1/absences/{asked_id}/refuse", json={"reason": "équipe complète"})
    assert r.status_code == 200 and r.json()["state"] == "refused"
    assert r.json()["reason"] == "équipe complète"
    listed = api.get("/api/v1/absences", params={"state": "refused"}).json()
    assert [a["id"] for a in listed["items"]] == [asked_id]
    r = api.post(f"/api/v1/absences/{doc['id']}/cancel", json={"reason": "formation reportée"})
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert api.get("/api/v1/absences/to-replace").json()["items"] == []
    assert api.post(f"/api/v1/absences/{doc['id']}/cancel", json={}).status_code == 409


def test_api_roles_and_another_agency(api, demo):
    from fleet.keys import create_api_key

    alice = _caregivers(api)["Alice Martin"]
    with api.app.state.sessions() as s:
        b = Organisation(name="Agence B")
        s.add(b)
        s.flush()
        tech = create_api_key(s, "technician", "tech", organisation_id=demo[1]["organisation_id"])
        key_b = create_api_key(s, "manager", "b", organisation_id=b.id)
        s.commit()
    body = {"caregiver_id": alice, "kind": "leave", "first_day": str(DAY),
            "last_day": str(DAY)}
    r = api.post("/api/v1/absences", json=body, headers={"Authorization": f"Bearer {tech}"})
    assert r.status_code == 403
    r = api.post("/api/v1/absences", json=body, headers={"Authorization": f"Bearer {key_b}"})
    assert r.status_code == 404, r.text  # another agency's caregiver: not found, nothing made
    made = api.post("/api/v1/absences", json=body).json()["id"]
    hb = {"Authorization": f"Bearer {key_b}"}
    assert api.get(f"/api/v1/absences/{made}", headers=hb).status_code == 404
    assert api.post(f"/api/v1/absences/{made}/cancel", json={}, headers=hb).status_code == 404
    assert api.get("/api/v1/absences", headers=hb).json()["total"] == 0
    assert api.get("/api/v1/absences/to-replace", headers=hb).json()["total"] == 0
    assert api.get(f"/api/v1/absences/{made}").json()["state"] == "approved"


def test_card_rules_photo_checks_validity_and_revocation(session):
    org = Organisation(name="Agence")
    session.add(org)
    session.flush()
    caregiver = Caregiver(organisation_id=org.id, name="Alice Martin")
    session.add(caregiver)
    session.flush()
    with pytest.raises(cards.CardRefused) as e:
        cards.set_details(session, caregiver, "C-1", "", date(2030, 1, 2), date(2030, 1, 1),
                          who="user:m", role="manager")
    assert e.value.status == 422 and cards.card_of(session, caregiver.id) is None
    card = cards.set_details(session, caregiver, "C-0001", "", date(2026, 1, 1),
                             date(2030, 12, 31), who="user:m", role="manager")
    assert card.title == cards.DEFAULT_TITLE and cards.TOKEN.match(card.token)
    for raw, status in ((b"GIF89a" + b"\0" * 100, 415), (b"<svg onload=alert(1)>", 415),
                        (b"\xff\xd8\xff" + b"\0" * cards.PHOTO_MAX, 413)):
        with pytest.raises(cards.CardRefused) as e:
            cards.set_photo(session, caregiver, raw, who="user:m", role="manager")
        assert e.value.status == status
    assert card.photo is None
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    cards.set_photo(session, caregiver, png, who="user:m", role="manager")
    assert cards.photo_data_url(card).startswith("data:image/png;base64,")
    now = datetime(2027, 6, 1, 12, tzinfo=timezone.utc)
    assert cards.verification(session, card.token, now) == {
        "valid": True, "name": "Alice Martin", "agency": "Agence"}
    assert cards.verification(session, card.token, datetime(2031, 1, 1, 12,
                                                              tzinfo=timezone.utc))["valid"] \
        is False
    caregiver.active = False
    assert cards.verification(session, card.token, now)["valid"] is False
    caregiver.active = True
    old = card.token
    cards.revoke(session, caregiver, "lost", who="user:m", role="manager")
    assert cards.verification(session, old, now) is None
    assert cards.verification(session, card.token, now)["valid"] is True
    assert cards.verification(session, "../../etc/passwd", now) is None
    other = Organisation(name="Autre")
    session.add(other)
    session.flush()
    with pytest.raises(cards.CardRefused) as e:
        cards.revoke(session, caregiver, "", who="user:x", role="manager",
                     organisation_id=other.id)
    assert e.value.status == 404


@pytest.mark.postgres
def test_absences_and_to_replace_on_postgres(pg_database_url):
    from fleet.api.app import create_app
    from fleet.config import Settings
    from fleet.keys import create_api_key
    from tools.up import seed

    seed(pg_database_url)
    app = create_app(Settings(database_url=pg_database_url))
    with app.state.sessions() as s:
        key = create_api_key(s, "admin", "pg")
        s.commit()
    with TestClient(app) as api:
        api.headers["Authorization"] = f"Bearer {key}"
        alice = _caregivers(api)["Alice Martin"]
        visit = _visit(api, alice, DAY, "10:00")
        r = api.post("/api/v1/absences", json={"caregiver_id": alice, "kind": "sick",
                                               "first_day": str(DAY), "last_day": str(DAY)})
        assert r.status_code == 201, r.text
        assert r.json()["visits_covered"] == [visit]
        r = api.post("/api/v1/absences", json={"caregiver_id": alice, "kind": "leave",
                                               "first_day": str(DAY), "last_day": "2030-01-10"})
        assert r.status_code == 409
        todo = api.get("/api/v1/absences/to-replace", params={
            "since": "2030-01-01T00:00:00Z", "until": "2030-02-01T00:00:00Z"}).json()
        assert [i["visit_id"] for i in todo["items"]] == [visit]
        with app.state.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Absence)) == 1
            assert s.scalar(select(func.count()).select_from(Client)) >= 1


def test_card_through_the_api_details_photo_and_revoke(api):
    """/api/v1/caregivers/{id}/card: none before it is set (404); PUT makes it with its QR
    token; the photo goes up as the request body, told by its bytes (415 for another kind,
    413 past 512 KiB, nothing changed) and comes back as it went; revoke changes the verify
    URL, the old one then answers "unknown"."""
    alice = _caregivers(api)["Alice Martin"]
    card = f"/api/v1/caregivers/{alice}/card"
    assert api.get(card).status_code == 404
    bad = api.put(card, json={"number": "C-1", "valid_from": "2030-01-02",
                              "valid_until": "2030-01-01"})
    assert bad.status_code == 422 and "ends before it starts" in bad.text
    assert api.get(card).status_code == 404  # nothing made by the refused call
    r = api.put(card, json={"number": "C-0001", "valid_from": "2026-01-01",
                            "valid_until": "2099-12-31"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["number"] == "C-0001" and doc["valid"] is True and doc["photo_type"] is None
    assert doc["title"] == cards.DEFAULT_TITLE and "/verify/" in doc["verify_url"]
    for raw, status in ((b"GIF89a" + b"\0" * 64, 415),
                        (b"\xff\xd8\xff" + b"\0" * cards.PHOTO_MAX, 413)):
        r = api.put(card + "/photo", content=raw, headers={"Content-Type": "image/jpeg"})
        assert r.status_code == status, r.text
    assert api.get(card + "/photo").status_code == 404
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(1, 65))
    r = api.put(card + "/photo", content=png, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["photo_type"] == "image/png"
    got = api.get(card + "/photo")
    assert got.content == png and got.headers["content-type"] == "image/png"
    old = doc["verify_url"].split("/verify/")[1]
    assert api.get(f"/verify/{old}").status_code == 200
    r = api.post(card + "/revoke", json={"why": "carte perdue"})
    assert r.status_code == 200 and r.json()["verify_url"] != doc["verify_url"]
    assert api.get(f"/verify/{old}").status_code == 404
    spec = api.app.openapi()["paths"]
    assert "image/png" in spec["/api/v1/caregivers/{obj_id}/card/photo"]["put"][
        "requestBody"]["content"]
