"""The professional card through the API (the same rules as the console's card page:
fleet.cards): read, set the details, upload or read the photo, revoke (a new QR code)."""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from fleet import cards
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, SessionDep
from fleet.models import Caregiver

router = APIRouter(tags=["caregivers"], dependencies=[PLANNERS])
_PHOTO_BODY = {"requestBody": {"required": True, "content": {
    t: {"schema": {"type": "string", "format": "binary"}}
    for t in ("image/jpeg", "image/png", "image/webp")}}}


class CardIn(BaseModel):
    number: str = Field(max_length=32, description="letters, digits, spaces, '.', '/', '-'")
    title: str = Field(cards.DEFAULT_TITLE, max_length=cards.TITLE_MAX)
    valid_from: date
    valid_until: date


class RevokeIn(BaseModel):
    why: str = Field("", max_length=500)


class CardOut(BaseModel):
    caregiver_id: int
    number: str | None
    title: str
    valid_from: date | None
    valid_until: date | None
    valid: bool = Field(description="today, in the agency's time zone, and the caregiver active")
    photo_type: str | None
    verify_url: str = Field(description="what the card's QR code opens; changes on revoke")


def _caregiver(session, key, caregiver_id: int) -> Caregiver:
    return data.get_scoped(session, key, Caregiver, caregiver_id)


def _out(request: Request, session, caregiver: Caregiver) -> CardOut:
    card = cards.card_of(session, caregiver.id)
    if card is None:
        raise HTTPException(404, f"caregiver {caregiver.id} has no card yet")
    return CardOut(caregiver_id=caregiver.id, number=card.number, title=card.title,
                   valid_from=card.valid_from, valid_until=card.valid_until,
                   valid=cards.is_valid(card, caregiver,
                                        cards.today_of(session, caregiver.organisation_id)),
                   photo_type=card.photo_type if card.photo else None,
                   verify_url=request.app.state.settings.link(f"/verify/{card.token}"))


def _refused(session, e: cards.CardRefused) -> HTTPException:
    session.rollback()
    return HTTPException(e.status, e.message)


@router.get("/caregivers/{obj_id}/card", response_model=CardOut)
def get_card(obj_id: int, request: Request, session: SessionDep, key: KeyDep):
    return _out(request, session, _caregiver(session, key, obj_id))


@router.put("/caregivers/{obj_id}/card", response_model=CardOut)
def put_card(obj_id: int, body: CardIn, request: Request, session: SessionDep, key: KeyDep):
    """Number, title and validity (the agency's days, inclusive); the card is made on the
    first call, with its QR code's token."""
    caregiver = _caregiver(session, key, obj_id)
    try:
        cards.set_details(session, caregiver, body.number, body.title, body.valid_from,
                          body.valid_until, who=data.who(key), role=key.role)
    except cards.CardRefused as e:
        raise _refused(session, e) from None
    session.commit()
    return _out(request, session, caregiver)


@router.put("/caregivers/{obj_id}/card/photo", response_model=CardOut,
            openapi_extra=_PHOTO_BODY)
async def put_photo(obj_id: int, request: Request, session: SessionDep, key: KeyDep):
    """The photo as the request body: JPEG, PNG or WebP, told by its first bytes whatever the
    Content-Type says; 512 KiB at most (413), another kind 415."""
    caregiver = _caregiver(session, key, obj_id)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > cards.PHOTO_MAX:  # stop reading: one byte past is enough to refuse
            break
    try:
        cards.set_photo(session, caregiver, bytes(raw), who=data.who(key), role=key.role)
    except cards.CardRefused as e:
        raise _refused(session, e) from None
    session.commit()
    return _out(request, session, caregiver)


@router.get("/caregivers/{obj_id}/card/photo", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}})
def get_photo(obj_id: int, session: SessionDep, key: KeyDep):
    card = cards.card_of(session, _caregiver(session, key, obj_id).id)
    if card is None or not card.photo:
        raise HTTPException(404, f"caregiver {obj_id} has no card photo")
    return Response(card.photo, media_type=card.photo_type,
                    headers={"Cache-Control": "no-store"})


@router.post("/caregivers/{obj_id}/card/revoke", response_model=CardOut)
def revoke_card(obj_id: int, body: RevokeIn, request: Request, session: SessionDep,
                key: KeyDep):
    """A new token: the QR code in circulation answers "unknown card" at once."""
    caregiver = _caregiver(session, key, obj_id)
    try:
        cards.revoke(session, caregiver, body.why, who=data.who(key), role=key.role)
    except cards.CardRefused as e:
        raise _refused(session, e) from None
    session.commit()
    return _out(request, session, caregiver)
