"""The phone's absences and professional card (docs/protocol.md, "Device gateway (HTTPS)").

`POST /gw/v1/absences` asks for an absence of the phone's caregiver; the app queues it
offline with a random `key`, so a resend after a lost answer gives back the same absence.
`GET /gw/v1/absences` lists them with the office's decision; `POST .../{id}/cancel` withdraws
one not yet decided. `GET /gw/v1/card` is the professional card (fleet.cards). The rules are
fleet.absences and fleet.cards, as for the API and the console.
"""
from __future__ import annotations

from datetime import date, time, timedelta
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from fleet import absences, cards
from fleet.api.deps import SessionDep
from fleet.gateway.routes import NO_STORE, Phone
from fleet.models import Absence, Caregiver
from fleet.types import utcnow

router = APIRouter(tags=["device gateway"])
SHOWN_DAYS = 60  # absences ended longer ago than this leave the phone's list
PHONE_FIELDS = ("id", "kind", "state", "all_day", "first_day", "last_day", "start_time",
                "end_time", "note", "reason", "decided_at")


class AbsenceRequest(BaseModel):
    key: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$",
                     description="chosen by the phone once per request: a resend is harmless")
    kind: Literal["leave", "sick", "training", "other"]
    first_day: date
    last_day: date
    start_time: time | None = None
    end_time: time | None = None
    note: str = Field("", max_length=absences.NOTE_MAX)


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status, headers=NO_STORE)


def _caregiver(session, device) -> Caregiver | None:
    return session.get(Caregiver, device.caregiver_id) if device.caregiver_id else None


def _phone_view(absence: Absence, tz: str) -> dict:
    """What the phone needs: no names of office staff."""
    doc = absences.as_dict(absence, tz)
    return {**{k: doc[k] for k in PHONE_FIELDS}, "key": absence.request_key}


@router.get("/absences")
def my_absences(device: Phone, session: SessionDep) -> JSONResponse:
    caregiver = _caregiver(session, device)
    if caregiver is None:
        return JSONResponse({"absences": []}, headers=NO_STORE)
    tz = absences.organisation_tz(session, caregiver.organisation_id)
    rows = session.scalars(select(Absence).where(
        Absence.caregiver_id == caregiver.id,
        Absence.ends_at > utcnow() - timedelta(days=SHOWN_DAYS))
        .order_by(Absence.starts_at.desc(), Absence.id.desc()).limit(50))
    return JSONResponse({"absences": [_phone_view(a, tz) for a in rows]}, headers=NO_STORE)


@router.post("/absences")
def ask_absence(body: AbsenceRequest, device: Phone, session: SessionDep) -> JSONResponse:
    caregiver = _caregiver(session, device)
    if caregiver is None:
        return _error(409, "no_caregiver", "this phone belongs to no caregiver · ce téléphone "
                      "n'est attribué à aucun intervenant")
    tz = absences.organisation_tz(session, caregiver.organisation_id)
    existed = session.scalars(select(Absence.id).where(
        Absence.caregiver_id == caregiver.id, Absence.request_key == body.key)).first()
    try:
        when = absences.period(tz, body.first_day, body.last_day, body.start_time,
                               body.end_time)
        absence = absences.create(session, caregiver, body.kind, when, body.note,
                                  who=f"device:{device.ident}", role="device",
                                  request_key=body.key)
    except absences.AbsenceRefused as e:
        session.rollback()
        return _error(e.status, "refused", e.message)
    session.commit()
    return JSONResponse({"absence": _phone_view(absence, tz)}, 200 if existed else 201,
                        headers=NO_STORE)


@router.post("/absences/{absence_id}/cancel")
def withdraw_absence(absence_id: int, device: Phone, session: SessionDep) -> JSONResponse:
    """The caregiver withdraws a request the office has not decided yet."""
    absence = session.get(Absence, absence_id)
    if absence is None or absence.caregiver_id != device.caregiver_id:
        return _error(404, "not_found", "no such absence of this phone's caregiver")
    if absence.state != "requested":
        return _error(409, "decided", "already decided: ask the office · déjà traitée : "
                      "adressez-vous à l'agence")
    absences.cancel(session, absence, "withdrawn by the caregiver", who=f"device:{device.ident}",
                    role="device")
    session.commit()
    tz = absences.organisation_tz(session, absence.organisation_id)
    return JSONResponse({"absence": _phone_view(absence, tz)}, headers=NO_STORE)


@router.get("/card")
def my_card(request: Request, device: Phone, session: SessionDep) -> JSONResponse:
    """The professional card, or `null` before the office has set it up."""
    caregiver = _caregiver(session, device)
    doc = cards.card_doc(session, caregiver, request.app.state.settings.link) \
        if caregiver else None
    return JSONResponse({"card": doc}, headers=NO_STORE)
