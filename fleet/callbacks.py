"""Call-me-back: a caregiver's one tap (with an optional reason) asks the office to call them
back. The console shows the waiting ones, oldest first, with how long each has waited; a
coordinator marks one taken (audited) and the phone shows when. One data layer for the
console's /callbacks page, `/api/v1/callbacks` and `/gw/v1/callbacks`."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.messages import REF_MAX, MessageProblem
from fleet.models import CallbackRequest, Device
from fleet.types import utcnow

REASON_MAX = 200
PHONE_MAX = 10


def ask(session: Session, device: Device, *, ref: str, reason: str = "",
        at: datetime | None = None) -> tuple[CallbackRequest, bool]:
    """A phone's request; `ref` is the phone's own id of it, so a resend is a no-op
    (returns the first, False). `at`: when it was tapped (offline, it is sent later)."""
    ref, reason = (ref or "").strip(), (reason or "").strip()
    if not ref or len(ref) > REF_MAX:
        raise MessageProblem("ref", f"1 to {REF_MAX} characters")
    if len(reason) > REASON_MAX:
        raise MessageProblem("reason", f"at most {REASON_MAX} characters · "
                                       f"{REASON_MAX} caractères au plus")
    known = session.scalars(select(CallbackRequest).where(
        CallbackRequest.device_id == device.id, CallbackRequest.ref == ref)).first()
    if known is not None:
        return known, False
    if device.caregiver_id is None:
        raise MessageProblem("device", "this phone has no caregiver · téléphone sans "
                                       "intervenant", 409)
    now = utcnow()
    row = CallbackRequest(organisation_id=device.organisation_id,
                          caregiver_id=device.caregiver_id, device_id=device.id, ref=ref,
                          reason=reason, created_at=min(at or now, now))
    session.add(row)
    session.flush()
    return row, True


def queue(session: Session, org_id: int, *, waiting: bool = True,
          limit: int = 100) -> list[CallbackRequest]:
    """Waiting requests oldest first, or (waiting=False) the taken ones newest first."""
    stmt = select(CallbackRequest).where(CallbackRequest.organisation_id == org_id)
    if waiting:
        stmt = stmt.where(CallbackRequest.taken_at.is_(None)).order_by(
            CallbackRequest.created_at, CallbackRequest.id)
    else:
        stmt = stmt.where(CallbackRequest.taken_at.is_not(None)).order_by(
            CallbackRequest.taken_at.desc(), CallbackRequest.id.desc())
    return list(session.scalars(stmt.limit(limit)))


def take(session: Session, org_id: int, request_id: int, *, who: str,
         role: str | None) -> CallbackRequest:
    """Mark it taken (the coordinator called back); audited. Taking it twice changes nothing.
    Another agency's request is unknown (404)."""
    row = session.get(CallbackRequest, request_id)
    if row is None or row.organisation_id != org_id:
        raise MessageProblem("callback", "no such call-back request · demande inconnue", 404)
    if row.taken_at is None:
        row.taken_at, row.taken_by = utcnow(), who[:200]
        audit.record(session, who, "callback_taken", f"callback:{row.id}", role=role,
                     detail={"caregiver_id": row.caregiver_id,
                             "waited_s": int((row.taken_at - row.created_at).total_seconds())})
    session.flush()
    return row


def for_phone(session: Session, caregiver_id: int) -> list[dict]:
    rows = session.scalars(select(CallbackRequest).where(
        CallbackRequest.caregiver_id == caregiver_id)
        .order_by(CallbackRequest.created_at.desc()).limit(PHONE_MAX))
    return [{"ref": r.ref, "reason": r.reason, "at": int(r.created_at.timestamp()),
             "taken": int(r.taken_at.timestamp()) if r.taken_at else None} for r in rows]
