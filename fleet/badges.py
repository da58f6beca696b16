"""Badges: issue, replace and revoke caregiver cards and client tags (docs/operations.md, "Badges").

Data functions shared by the API, the console and the CLI; the caller commits. A client tag is
issued with a token the fleet signs (fleet.tagtokens) unless an existing tag's text is imported;
replacing a badge revokes the old one and issues its successor in one step, so that a lost card
or a copied QR code stops matching the moment the new one exists.
"""
from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet import audit, tagtokens
from fleet.models import Badge, Caregiver, Client, Organisation
from fleet.types import utcnow

_CARD = re.compile(r"^[0-9A-F]{8,20}$")


class BadgeError(Exception):
    """Refused: `status` is the HTTP status the API answers (404, 409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def card_uid(text: str) -> str:
    """A card UID as stored: hex digits, upper case, without separators."""
    uid = text.replace(":", "").replace(" ", "").replace("-", "").upper()
    if not _CARD.match(uid):
        raise BadgeError(422, f"card UID {text!r}: give 8 to 20 hex digits "
                              "(4, 7 or 10 bytes, e.g. 04A1B2C3D4E5F6)")
    return uid


def owner_of(session: Session, kind: str, caregiver_id: int | None,
             client_id: int | None) -> Caregiver | Client:
    """The caregiver (card) or client (tag) a new badge is for."""
    if kind == "caregiver_card":
        if caregiver_id is None or client_id is not None:
            raise BadgeError(422, "a caregiver card belongs to a caregiver: give caregiver_id")
        owner = session.get(Caregiver, caregiver_id)
    elif kind == "client_tag":
        if client_id is None or caregiver_id is not None:
            raise BadgeError(422, "a client tag belongs to a client: give client_id")
        owner = session.get(Client, client_id)
    else:
        raise BadgeError(422, f"unknown badge kind {kind!r}: caregiver_card or client_tag")
    if owner is None:
        raise BadgeError(422, "the badge's owner does not exist")
    return owner


def _tag_uid(org: Organisation, client: Client, text: str | None) -> str:
    if text is None:
        return tagtokens.mint(org.tag_secret, org.id, client.id)
    text = text.strip()
    if not 1 <= len(text) <= 64:
        raise BadgeError(422, "a client tag's text is 1 to 64 characters")
    if tagtokens.looks_signed(text):
        wrong = tagtokens.verify(org.tag_secret, org.id, text)
        if wrong:
            raise BadgeError(422, f"token {text!r} refused: {wrong}")
        if tagtokens.parse(text).client_id != client.id:
            raise BadgeError(422, f"token {text!r} was issued for another client")
    return text


def issue(session: Session, who: str, owner: Caregiver | Client, uid: str | None = None,
          *, active: bool = True, replaces: Badge | None = None,
          role: str | None = None, note: dict | None = None) -> Badge:
    """A new badge for `owner`. A card needs its UID; a tag without one gets a signed token.
    `note` is added to the audit entry's detail (the console's form_id)."""
    org = session.get(Organisation, owner.organisation_id)
    if isinstance(owner, Caregiver):
        if uid is None:
            raise BadgeError(422, "a caregiver card needs its UID (read it with "
                                  "`telegest badge read`)")
        kind, uid = "caregiver_card", card_uid(uid)
    else:
        kind, uid = "client_tag", _tag_uid(org, owner, uid)
    badge = Badge(organisation_id=org.id, kind=kind, uid=uid, active=active,
                  caregiver_id=owner.id if kind == "caregiver_card" else None,
                  client_id=owner.id if kind == "client_tag" else None,
                  replaces_id=replaces.id if replaces else None)
    try:
        with session.begin_nested():
            session.add(badge)
            session.flush()
    except IntegrityError:
        raise BadgeError(409, f"badge {uid} is already registered") from None
    detail = {**(note or {}), "kind": kind, "uid": uid, "signed": badge.signed}
    if replaces is not None:
        detail["replaces"] = replaces.id
    audit.record(session, who, "create", f"badge:{badge.id}", role=role, detail=detail)
    return badge


def revoke(session: Session, who: str, badge: Badge, reason: str,
           role: str | None = None) -> Badge:
    """The badge no longer matches; events that still carry it are flagged `revoked_badge`."""
    reason = reason.strip()
    if not reason:
        raise BadgeError(422, "say why the badge is revoked (lost, stolen, copied, worn...)")
    if not badge.active:
        raise BadgeError(409, f"badge {badge.id} is already revoked")
    badge.active, badge.revoked_at, badge.revoke_reason = False, utcnow(), reason[:200]
    audit.record(session, who, "revoke", f"badge:{badge.id}", role=role, why=reason[:200])
    return badge


def restore(session: Session, who: str, badge: Badge, role: str | None = None) -> Badge:
    """A revoked badge found again: it matches again (unless a replacement took its place)."""
    if badge.active:
        raise BadgeError(409, f"badge {badge.id} is active")
    successor = session.scalar(select(Badge.id).where(Badge.replaces_id == badge.id))
    if successor is not None:
        raise BadgeError(409, f"badge {badge.id} was replaced by badge {successor}: revoke "
                              "that one first if the old badge is to be used again")
    badge.active, badge.revoked_at, badge.revoke_reason = True, None, None
    audit.record(session, who, "restore", f"badge:{badge.id}", role=role)
    return badge


def replace(session: Session, who: str, badge: Badge, reason: str, uid: str | None = None,
            role: str | None = None, note: dict | None = None) -> Badge:
    """Revoke `badge` (unless it already is: a lost card revoked at once, replaced the next
    day) and issue its successor for the same owner, in one step."""
    owner = (session.get(Caregiver, badge.caregiver_id) if badge.kind == "caregiver_card"
             else session.get(Client, badge.client_id))
    successor = session.scalar(select(Badge.id).where(Badge.replaces_id == badge.id))
    if successor is not None:
        raise BadgeError(409, f"badge {badge.id} was already replaced by badge {successor}")
    if badge.sun_uid is not None and uid is None:
        # a static token in place of an NTAG 424 would quietly lower the proof
        raise BadgeError(422, f"badge {badge.id} is an NTAG 424 DNA: revoke it and personalise "
                              "its successor with `telegest badge write --ntag424`")
    if badge.active:
        revoke(session, who, badge, reason, role=role)
    elif not reason.strip():
        raise BadgeError(422, "say why the badge is replaced (lost, stolen, copied, worn...)")
    return issue(session, who, owner, uid, replaces=badge, role=role, note=note)
