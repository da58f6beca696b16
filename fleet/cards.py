"""The professional card (carte professionnelle): the rules the console, the gateway and the
public verification page call.

The office sets a caregiver's card number, title and validity dates and uploads the photo;
the app shows the card with a QR code of `<public URL>/verify/<token>`, a page anyone may open
that says valid or not, with the name and the agency only. The token is random (192 bits),
so it cannot be guessed; "revoke" gives the card a new one and the old QR code then answers
"unknown card". A card is valid only between its dates (agency days, inclusive), with a number,
while the caregiver is active. The photo is checked by its first bytes (JPEG, PNG or WebP) and
its size, kept in the database (no file name from the sender is ever used), and given back
only as a `data:` URL of that checked type. Refusals are `CardRefused`; nothing changes then.
"""
from __future__ import annotations

import base64
import re
import secrets
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import Caregiver, CaregiverCard, Organisation

PHOTO_MAX = 512 * 1024
TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./-]{0,31}$")
TITLE_MAX = 100
DEFAULT_TITLE = "Intervenant(e) à domicile"


class CardRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def new_token() -> str:
    return secrets.token_urlsafe(24)


def photo_type(raw: bytes) -> str | None:
    """The image type by its first bytes, whatever the sender called it."""
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def _mine(caregiver: Caregiver, organisation_id: int | None) -> None:
    if organisation_id is not None and caregiver.organisation_id != organisation_id:
        raise CardRefused(404, f"caregiver {caregiver.id} not found · intervenant introuvable")


def card_of(session: Session, caregiver_id: int) -> CaregiverCard | None:
    return session.scalars(select(CaregiverCard).where(
        CaregiverCard.caregiver_id == caregiver_id)).first()


def _ensure(session: Session, caregiver: Caregiver) -> CaregiverCard:
    card = card_of(session, caregiver.id)
    if card is None:
        card = CaregiverCard(organisation_id=caregiver.organisation_id,
                             caregiver_id=caregiver.id, token=new_token(), title=DEFAULT_TITLE)
        session.add(card)
    return card


def set_details(session: Session, caregiver: Caregiver, number: str, title: str,
                valid_from: date | None, valid_until: date | None, *, who: str, role: str,
                organisation_id: int | None = None) -> CaregiverCard:
    _mine(caregiver, organisation_id)
    number, title = (number or "").strip(), (title or "").strip()
    if not NUMBER.match(number):
        raise CardRefused(422, "card number: 1 to 32 letters, digits, spaces, '.', '/' or '-' "
                               "· numéro de carte : 1 à 32 lettres, chiffres, espaces, . / -")
    if len(title) > TITLE_MAX:
        raise CardRefused(422, f"title over {TITLE_MAX} characters · fonction de plus de "
                               f"{TITLE_MAX} caractères")
    if valid_from is None or valid_until is None:
        raise CardRefused(422, "both validity dates are needed · les deux dates de validité "
                               "sont nécessaires")
    if valid_until < valid_from:
        raise CardRefused(422, "the card ends before it starts · la fin de validité précède "
                               "le début")
    card = _ensure(session, caregiver)
    before = {"number": card.number, "valid_from": str(card.valid_from),
              "valid_until": str(card.valid_until)}
    card.number, card.title = number, title or DEFAULT_TITLE
    card.valid_from, card.valid_until = valid_from, valid_until
    session.flush()
    audit.record(session, who, "card_update", f"caregiver:{caregiver.id}", role=role,
                 detail={"before": before, "after": {"number": number,
                                                     "valid_from": str(valid_from),
                                                     "valid_until": str(valid_until)}})
    return card


def set_photo(session: Session, caregiver: Caregiver, raw: bytes, *, who: str, role: str,
              organisation_id: int | None = None) -> CaregiverCard:
    _mine(caregiver, organisation_id)
    if len(raw) > PHOTO_MAX:
        raise CardRefused(413, f"the photo is over {PHOTO_MAX // 1024} KiB · la photo dépasse "
                               f"{PHOTO_MAX // 1024} Kio")
    kind = photo_type(raw)
    if kind is None:
        raise CardRefused(415, "not a JPEG, PNG or WebP image · ce n'est pas une image JPEG, "
                               "PNG ou WebP")
    card = _ensure(session, caregiver)
    card.photo, card.photo_type = raw, kind
    session.flush()
    audit.record(session, who, "card_photo", f"caregiver:{caregiver.id}", role=role,
                 detail={"bytes": len(raw), "type": kind})
    return card


def revoke(session: Session, caregiver: Caregiver, why: str, *, who: str, role: str,
           organisation_id: int | None = None) -> CaregiverCard:
    """A new token: the QR code in circulation stops verifying at once."""
    _mine(caregiver, organisation_id)
    card = card_of(session, caregiver.id)
    if card is None:
        raise CardRefused(404, "no card to revoke · aucune carte à révoquer")
    card.token = new_token()
    session.flush()
    audit.record(session, who, "card_revoke", f"caregiver:{caregiver.id}", role=role,
                 why=(why or "").strip()[:500] or None)
    return card


def today_of(session: Session, organisation_id: int, now: datetime | None = None) -> date:
    org = session.get(Organisation, organisation_id)
    tz = ZoneInfo(org.timezone if org else "Europe/Paris")
    return (now.astimezone(tz) if now else datetime.now(tz)).date()


def is_valid(card: CaregiverCard, caregiver: Caregiver, today: date) -> bool:
    return bool(caregiver.active and card.number and card.valid_from and card.valid_until
                and card.valid_from <= today <= card.valid_until)


def verification(session: Session, token: str, now: datetime | None = None) -> dict | None:
    """What /verify/<token> shows: valid or not, the name and the agency, nothing else; None
    for a token that names no card (never issued, or revoked)."""
    if not TOKEN.match(token or ""):
        return None
    card = session.scalars(select(CaregiverCard).where(CaregiverCard.token == token)).first()
    if card is None:
        return None
    caregiver = session.get(Caregiver, card.caregiver_id)
    org = session.get(Organisation, card.organisation_id)
    return {"valid": is_valid(card, caregiver, today_of(session, card.organisation_id, now)),
            "name": caregiver.name, "agency": org.name}


def photo_data_url(card: CaregiverCard | None) -> str | None:
    if card is None or not card.photo or card.photo_type not in ("image/jpeg", "image/png",
                                                                 "image/webp"):
        return None
    return f"data:{card.photo_type};base64,{base64.b64encode(card.photo).decode()}"


def card_doc(session: Session, caregiver: Caregiver, link) -> dict | None:
    """The card as the app shows it (`link(path)` makes the public URL); None before the
    office has set it up."""
    from fleet.web.qr import qr_data_url

    card = card_of(session, caregiver.id)
    if card is None or not card.number:
        return None
    org = session.get(Organisation, caregiver.organisation_id)
    url = link(f"/verify/{card.token}")
    return {"name": caregiver.name, "title": card.title, "agency": org.name,
            "number": card.number, "valid_from": card.valid_from.isoformat(),
            "valid_until": card.valid_until.isoformat(),
            "valid": is_valid(card, caregiver, today_of(session, caregiver.organisation_id)),
            "photo": photo_data_url(card), "verify_url": url, "qr": qr_data_url(url)}
