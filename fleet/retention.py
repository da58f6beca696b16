"""Personal data kept only as long as the law allows (docs/privacy.md), by a daily job that the
fleet-duties lease holder runs and that records what it purged.

| what | kept | where it is set |
|---|---|---|
| positions of clock events (`pos`, and in the raw event) and of SOS alerts | `positions_keep_days`, at most 60 (CNIL: 2 months) | agency settings |
| rejected messages and events (their raw text) | `rejections_keep_days`, at most 30 | agency settings |
| audit entries | the longest `audit_keep_days` of the agencies (the log is one chain for the fleet) | agency settings |
| outbox rows sent or dead (e-mail bodies name clients) | 30 days | fixed |
| messages between the office and caregivers, with their receipts | 365 days after sent | fixed |
| call-back requests once taken | 365 days after taken (a waiting one stays) | fixed |

Clock events themselves (who, where, when) are kept: they are what the visits, corrections and
exports stand on. The audit chain stays verifiable: the hash the oldest kept entry follows is
recorded in the run (`audit_anchor`, fleet.auditchain). On PostgreSQL the service role may not
delete audit entries: it purges them through the owner's SECURITY DEFINER function
(fleet.service_role).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, null, select, update
from sqlalchemy.orm import Session

from fleet import audit, service_role
from fleet.models import (AlertSettings, AuditLog, CallbackRequest, ClockEvent, Device, Message,
                          MessageRecipient, Organisation, Outbox, Rejection, RetentionRun,
                          SosAlert)

log = logging.getLogger("telegest.retention")

POSITIONS_MAX_DAYS, REJECTIONS_MAX_DAYS = 60, 30
DEFAULTS = {"positions_keep_days": 60, "rejections_keep_days": 30, "audit_keep_days": 1825}
OUTBOX_DAYS = 30
MESSAGES_DAYS = 365  # messages, their receipts, and call-back requests once taken
EVERY_S = 24 * 3600
_BATCH = 2000


def _settings(session: Session) -> dict[int, dict[str, int]]:
    rows = {r.organisation_id: r for r in session.scalars(select(AlertSettings))}
    out = {}
    for org_id in session.scalars(select(Organisation.id)):
        r = rows.get(org_id)
        out[org_id] = {k: min(getattr(r, k) if r else v, {"positions_keep_days":
                                                          POSITIONS_MAX_DAYS,
                                                          "rejections_keep_days":
                                                          REJECTIONS_MAX_DAYS}.get(k, 10**6))
                       for k, v in DEFAULTS.items()}
    return out


def _strip_positions(session: Session, org_id: int, before: datetime) -> int:
    """Clear `pos` (and its copy in the raw event) of the agency's events older than
    `before`, a batch at a time."""
    mine = select(Device.id).where(Device.organisation_id == org_id)
    done = 0
    while True:
        rows = session.execute(select(ClockEvent.id, ClockEvent.pos, ClockEvent.raw).where(
            ClockEvent.device_id.in_(mine), ClockEvent.device_ts < before,
            ClockEvent.pos.is_not(None)).limit(_BATCH)).all()
        if not rows:
            return done
        for event_id, pos, raw in rows:
            # an event without a position may hold the JSON text 'null' (IS NOT NULL then):
            # it is set to SQL NULL as well, so that it is not read again
            kept = {k: v for k, v in (raw or {}).items() if k != "pos"}
            session.execute(update(ClockEvent).where(ClockEvent.id == event_id)
                            .values(pos=null(), raw=kept))
            done += isinstance(pos, list) or "pos" in (raw or {})


def _purge_messages(session: Session, now: datetime) -> tuple[int, int]:
    """Messages sent more than MESSAGES_DAYS ago (their receipts first), and call-back requests
    taken that long ago; a request still waiting is kept whatever its age."""
    cutoff = now - timedelta(days=MESSAGES_DAYS)
    old = select(Message.id).where(Message.created_at < cutoff)
    session.execute(delete(MessageRecipient).where(MessageRecipient.message_id.in_(old)))
    messages = session.execute(delete(Message).where(Message.created_at < cutoff)).rowcount
    callbacks = session.execute(delete(CallbackRequest).where(
        CallbackRequest.taken_at.is_not(None), CallbackRequest.taken_at < cutoff)).rowcount
    return messages, callbacks


def purge(session: Session, now: datetime, who: str = "fleet") -> RetentionRun:
    """One pass over every agency; the caller commits. Returns the run it recorded."""
    purged = {"positions": 0, "rejections": 0, "audit": 0, "outbox": 0, "messages": 0,
              "callbacks": 0}
    settings = _settings(session)
    for org_id, s in settings.items():
        purged["positions"] += _strip_positions(
            session, org_id, now - timedelta(days=s["positions_keep_days"]))
        purged["positions"] += session.execute(update(SosAlert).where(
            SosAlert.organisation_id == org_id, SosAlert.lat.is_not(None),
            SosAlert.raised_at < now - timedelta(days=s["positions_keep_days"]))
            .values(lat=None, lon=None, accuracy_m=None)).rowcount
        mine = select(Device.id).where(Device.organisation_id == org_id)
        purged["rejections"] += session.execute(delete(Rejection).where(
            Rejection.device_id.in_(mine),
            Rejection.created_at < now - timedelta(days=s["rejections_keep_days"]))).rowcount
    # messages of no known device belong to no agency: the shortest period applies
    purged["rejections"] += session.execute(delete(Rejection).where(
        Rejection.device_id.is_(None),
        Rejection.created_at < now - timedelta(days=REJECTIONS_MAX_DAYS))).rowcount
    purged["outbox"] = session.execute(delete(Outbox).where(
        Outbox.state.in_(("sent", "dead")),
        Outbox.created_at < now - timedelta(days=OUTBOX_DAYS))).rowcount
    purged["messages"], purged["callbacks"] = _purge_messages(session, now)
    anchor = None
    keep_days = max((s["audit_keep_days"] for s in settings.values()),
                    default=DEFAULTS["audit_keep_days"])
    cutoff = now - timedelta(days=keep_days)
    first_kept = session.scalars(select(AuditLog).where(AuditLog.at >= cutoff)
                                 .order_by(AuditLog.id).limit(1)).first()
    newest_old = session.scalars(select(AuditLog).where(
        AuditLog.at < cutoff, *([AuditLog.id < first_kept.id] if first_kept else []))
        .order_by(AuditLog.id.desc()).limit(1)).first()
    if newest_old is not None and not service_role.may_delete_audit(session):
        # the service role may not delete audit entries: the owner's function does, from 30
        # days back at the nearest (fleet.service_role)
        purged["audit"], anchor = service_role.purge_audit(session, cutoff)
    elif newest_old is not None:
        # the chain then starts from the hash the oldest kept entry follows
        anchor = first_kept.prev_hash if first_kept else newest_old.hash
        purged["audit"] = session.execute(delete(AuditLog).where(
            AuditLog.id <= newest_old.id)).rowcount
    run = RetentionRun(at=now, who=who, purged=purged, audit_anchor=anchor)
    session.add(run)
    audit.record(session, who, "retention", "fleet", detail=purged)
    log.info("retention: purged %s", purged)  # counts only: no personal data in the logs
    return run
