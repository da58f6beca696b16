"""The professional card's pages: the office's form (number, title, validity, photo, revoke) at
/caregivers/{id}/card, planners only, and the public verification page /verify/{token} that the
card's QR code opens (no sign-in; valid or not, the name and the agency, nothing else).

The rules are fleet.cards; every write checks the CSRF token and is audited as the signed-in
person. A refused photo or field shows the page again with its message; nothing changes.
"""
from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from fleet import cards
from fleet.console.auth import Viewer
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.i18n import N_
from fleet.models import Caregiver, Organisation
from fleet.web.qr import qr_svg

router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]
DONE = {"saved": N_("Card saved"), "photo": N_("Photo saved"),
        "revoked": N_("Card revoked: the old QR code no longer verifies")}
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}


def _caregiver(session: Session, viewer: Viewer, caregiver_id: int
               ) -> tuple[Organisation, Caregiver]:
    org = organisation(session, viewer)
    caregiver = session.get(Caregiver, caregiver_id)
    if org is None or caregiver is None or caregiver.organisation_id != org.id:
        raise Missing(f"No caregiver {caregiver_id} · Aucun intervenant {caregiver_id}")
    return org, caregiver


def _page(request: Request, session: Session, viewer: Viewer, org: Organisation,
          caregiver: Caregiver, error: str | None = None, status_code: int = 200,
          values: dict | None = None, done: str = "") -> Response:
    card = cards.card_of(session, caregiver.id)
    url = request.app.state.settings.link(f"/verify/{card.token}") if card else None
    form = {"number": card.number if card else "",
            "title": card.title if card else cards.DEFAULT_TITLE,
            "valid_from": card.valid_from.isoformat() if card and card.valid_from else "",
            "valid_until": card.valid_until.isoformat() if card and card.valid_until else ""}
    form.update(values or {})
    valid = bool(card) and cards.is_valid(card, caregiver, cards.today_of(session, org.id))
    resp = page(request, "card.html", viewer, status_code, org=org, caregiver=caregiver,
                card=card, form=form, error=error, done=DONE.get(done, ""), url=url,
                qr=qr_svg(url) if card and card.number else None, valid=valid,
                photo=cards.photo_data_url(card), photo_max_kib=cards.PHOTO_MAX // 1024)
    resp.headers.update(PRIVATE)
    return resp


@router.get("/caregivers/{caregiver_id}/card")
def card_page(caregiver_id: int, request: Request, session: SessionDep, viewer: PlannerDep,
              done: str = "") -> Response:
    org, caregiver = _caregiver(session, viewer, caregiver_id)
    return _page(request, session, viewer, org, caregiver, done=done)


def _date(raw: str, what: str) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise cards.CardRefused(422, f"{what}: {raw!r} is not a date (YYYY-MM-DD) · n'est "
                                     "pas une date") from None


@router.post("/caregivers/{caregiver_id}/card")
def save_card(caregiver_id: int, request: Request, session: SessionDep,
              viewer: PlannerPostDep, number: FormStr = "", title: FormStr = "",
              valid_from: FormStr = "", valid_until: FormStr = "") -> Response:
    org, caregiver = _caregiver(session, viewer, caregiver_id)
    values = {"number": number, "title": title, "valid_from": valid_from,
              "valid_until": valid_until}
    try:
        cards.set_details(session, caregiver, number, title,
                          _date(valid_from, N_("valid from")),
                          _date(valid_until, N_("valid until")),
                          who=viewer.who, role=viewer.role, organisation_id=org.id)
        session.commit()
    except cards.CardRefused as e:
        session.rollback()
        return _page(request, session, viewer, org, caregiver, e.message, e.status, values)
    return redirect(f"/caregivers/{caregiver.id}/card?done=saved")


@router.post("/caregivers/{caregiver_id}/card/photo")
async def save_photo(caregiver_id: int, request: Request, session: SessionDep,
                     viewer: PlannerPostDep,
                     photo: Annotated[UploadFile, File(description="JPEG, PNG or WebP")]
                     ) -> Response:
    org, caregiver = _caregiver(session, viewer, caregiver_id)
    raw = await photo.read(cards.PHOTO_MAX + 1)  # never more than one byte past the limit
    try:
        cards.set_photo(session, caregiver, raw, who=viewer.who, role=viewer.role,
                        organisation_id=org.id)
        session.commit()
    except cards.CardRefused as e:
        session.rollback()
        return _page(request, session, viewer, org, caregiver, e.message, e.status)
    return redirect(f"/caregivers/{caregiver.id}/card?done=photo")


@router.post("/caregivers/{caregiver_id}/card/revoke")
def revoke_card(caregiver_id: int, request: Request, session: SessionDep,
                viewer: PlannerPostDep, why: FormStr = "") -> Response:
    org, caregiver = _caregiver(session, viewer, caregiver_id)
    try:
        cards.revoke(session, caregiver, why, who=viewer.who, role=viewer.role,
                     organisation_id=org.id)
        session.commit()
    except cards.CardRefused as e:
        session.rollback()
        return _page(request, session, viewer, org, caregiver, e.message, e.status)
    return redirect(f"/caregivers/{caregiver.id}/card?done=revoked")


@router.get("/verify/{token}")
def verify(token: str, request: Request, session: SessionDep) -> Response:
    """Public: what the card's QR code opens. An unknown or revoked token says only "not
    valid"; a known one adds the name and the agency."""
    found = cards.verification(session, token)
    resp = page(request, "verify.html", None, 200 if found else 404, found=found)
    resp.headers.update(PRIVATE)
    return resp
