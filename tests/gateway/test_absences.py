"""The phone's absences and card through the real gateway routes: a request, its resend with
the same key, the office's decision seen by the phone, withdrawal, refusals; the card with
its QR code of the verification link."""
from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from fleet import cards
from fleet.models import Absence, Caregiver

DAY = "2030-01-07"


def _count(api) -> int:
    with api.app.state.sessions() as s:
        return s.scalar(select(func.count()).select_from(Absence))


def test_request_resend_decision_and_withdrawal(phone, fleet_api):
    body = {"key": "req-0001-abcdef", "kind": "leave", "first_day": DAY,
            "last_day": "2030-01-09", "note": "vacances"}
    r = phone.post("/absences", json=body)
    assert r.status_code == 201, r.text
    first = r.json()["absence"]
    assert first["state"] == "requested" and first["all_day"] and first["key"] == body["key"]
    assert (first["first_day"], first["last_day"]) == (DAY, "2030-01-09")
    assert r.headers["cache-control"] == "no-store"
    again = phone.post("/absences", json=body)  # the answer was lost: the queue sends it again
    assert again.status_code == 200 and again.json()["absence"]["id"] == first["id"]
    assert _count(fleet_api) == 1

    r = fleet_api.post(f"/api/v1/absences/{first['id']}/refuse",
                       json={"reason": "période de forte activité"})
    assert r.status_code == 200
    mine = phone.get("/absences").json()["absences"]
    assert [(a["id"], a["state"], a["reason"]) for a in mine] == [
        (first["id"], "refused", "période de forte activité")]
    assert "decided_by" not in mine[0] and "requested_by" not in mine[0]
    assert phone.post(f"/absences/{first['id']}/cancel").status_code == 409

    r = phone.post("/absences", json={"key": "req-0002-abcdef", "kind": "training",
                                      "first_day": DAY, "last_day": DAY,
                                      "start_time": "14:00", "end_time": "17:30"})
    assert r.status_code == 201, r.text
    second = r.json()["absence"]
    assert (second["start_time"], second["end_time"]) == ("14:00", "17:30")
    r = phone.post(f"/absences/{second['id']}/cancel")
    assert r.status_code == 200 and r.json()["absence"]["state"] == "cancelled"


def test_refusals_change_nothing(phone, fleet_api):
    ok = {"key": "req-0003-abcdef", "kind": "sick", "first_day": DAY, "last_day": DAY}
    assert phone.post("/absences", json=ok).status_code == 201
    for body, status, words in (
            ({**ok, "key": "req-0004-abcdef"}, 409, "overlaps"),
            ({**ok, "key": "req-0005-abcdef", "first_day": "2030-02-02",
              "last_day": "2030-02-01"}, 422, "précède"),
            ({**ok, "key": "req-0006-abcdef", "first_day": "2030-02-02",
              "last_day": "2030-02-02", "start_time": "10:00"}, 422, "deux heures"),
            ({**ok, "key": "bad key!"}, 422, "key"),
            ({**ok, "key": "req-0007-abcdef", "kind": "vacation"}, 422, "kind"),
            ({**ok, "key": "req-0008-abcdef", "note": "x" * 501}, 422, "note")):
        r = phone.post("/absences", json=body)
        assert r.status_code == status and words in r.text, (body, r.text)
    assert _count(fleet_api) == 1
    other = phone.post("/absences/999999/cancel")
    assert other.status_code == 404


def test_the_card_with_its_qr_code(phone, fleet_api):
    assert phone.get("/card").json() == {"card": None}
    with fleet_api.app.state.sessions() as s:
        caregiver = s.get(Caregiver, phone.caregiver_id)
        card = cards.set_details(s, caregiver, "CP-0042", "Auxiliaire de vie",
                                 date(2026, 1, 1), date(2030, 12, 31), who="user:m",
                                 role="manager")
        cards.set_photo(s, caregiver, b"\xff\xd8\xff\xe0" + b"\0" * 100, who="user:m",
                        role="manager")
        s.commit()
        token = card.token
    doc = phone.get("/card").json()["card"]
    assert doc["name"] == "Alice Martin" and doc["number"] == "CP-0042"
    assert doc["title"] == "Auxiliaire de vie" and doc["valid"] is True
    assert doc["verify_url"].endswith(f"/verify/{token}")
    assert doc["qr"].startswith("data:image/svg+xml;base64,")
    assert doc["photo"].startswith("data:image/jpeg;base64,")
    assert phone.get("/card", headers={"Authorization": "Basic eDp5"}).status_code == 401
