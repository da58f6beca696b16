"""Late and missed visits: raised by the lease holder's sweep, e-mailed to the on-call
coordinators through the outbox, closed when they no longer hold (docs/operations.md).

| kind | raised when the visit is not started at | closed when |
|---|---|---|
| late | planned start + `late_after_min` | the caregiver arrives (the record gets an actual start), the visit is corrected (a correction code) or cancelled |
| missed | planned start + `missed_after_min`, or its planned end if that comes first | the same |

A visit gets at most one alert of each kind, ever (a partial unique index holds it even with two
sweepers during a lease handover), and each alert one e-mail per on-call address (the outbox's
dedupe key is visit, kind and address). A visit first seen when already missed raises `missed`
only. Cancelled visits and those of inactive caregivers raise nothing; nor do visits planned
more than LOOKBACK ago (a fleet started after a long stop does not send a day's worth of stale
e-mails), nor a kind that was already due when the visit was entered (a visit typed in after
the fact, a planning imported late). Everything takes a session and the time; the caller
commits.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet import outbox
from fleet.config import DEFAULT_PUBLIC_URL
from fleet.models import (ONE_VISIT_ALERT, VISIT_ALERT_KINDS, Alert, AlertSettings, Caregiver,
                          Client, Organisation, Visit, VisitRecord)

log = logging.getLogger("telegest.visit_alerts")

DEFAULT_LATE_MIN, DEFAULT_MISSED_MIN = 15, 60
LOOKBACK = timedelta(days=1)

_SUBJECT = {
    "late": "Intervention en retard · Late visit",
    "missed": "Intervention manquée · Missed visit",
}


def oncall_addresses(raw: str | None) -> list[str]:
    """The comma-separated column as a list (empty entries dropped)."""
    return [a.strip() for a in (raw or "").replace("\n", ",").split(",") if a.strip()]


def sweep(session: Session, now: datetime, public_url: str = DEFAULT_PUBLIC_URL) -> Counter:
    """Raise what is due, e-mail it, close what no longer holds."""
    counts = _close(session, now)
    counts.update(_raise(session, now, public_url.rstrip("/")))
    return counts


def _raise(session: Session, now: datetime, base_url: str) -> Counter:
    counts: Counter = Counter()
    late_min = func.coalesce(AlertSettings.late_after_min, DEFAULT_LATE_MIN)
    rows = session.execute(
        select(Visit.id, Visit.organisation_id, Visit.caregiver_id, Visit.planned_start,
               Visit.planned_end, Visit.created_at, Client.name.label("client"),
               Caregiver.name.label("caregiver"), late_min.label("late_min"),
               func.coalesce(AlertSettings.missed_after_min, DEFAULT_MISSED_MIN)
               .label("missed_min"), AlertSettings.oncall_emails, Organisation.timezone)
        .join(Client, Client.id == Visit.client_id)
        .join(Caregiver, Caregiver.id == Visit.caregiver_id)
        .join(Organisation, Organisation.id == Visit.organisation_id)
        .outerjoin(AlertSettings, AlertSettings.organisation_id == Visit.organisation_id)
        .outerjoin(VisitRecord, VisitRecord.visit_id == Visit.id)
        .where(Visit.status.in_(("planned", "in_progress")), Caregiver.active,
               Visit.planned_start <= now, Visit.planned_start > now - LOOKBACK,
               or_(VisitRecord.id.is_(None),
                   and_(VisitRecord.actual_start.is_(None),
                        VisitRecord.correction_code.is_(None))))
        .order_by(Visit.planned_start, Visit.id)).all()
    due: list[tuple] = []
    for r in rows:
        missed_at = min(r.planned_start + timedelta(minutes=r.missed_min), r.planned_end)
        late_at = r.planned_start + timedelta(minutes=r.late_min)
        if now >= missed_at:
            due.append((r, "missed", missed_at))
        elif now >= late_at:
            due.append((r, "late", late_at))
        if due and due[-1][0] is r and r.created_at > due[-1][2]:
            due.pop()  # planned after it was due (entered after the fact): nobody to warn
    if not due:
        return counts
    # a visit first seen missed raises missed only; one already late gets missed beside it
    known = set(session.execute(select(Alert.visit_id, Alert.kind).where(
        Alert.visit_id.in_({r.id for r, _, _ in due}), Alert.kind.in_(VISIT_ALERT_KINDS))).all())
    new = [(r, kind, at) for r, kind, at in due if (r.id, kind) not in known]
    if not new:
        return counts
    _insert(session, [{"kind": kind, "organisation_id": r.organisation_id, "visit_id": r.id,
                       "caregiver_id": r.caregiver_id, "created_at": now, "opened_at": at,
                       "resolved": False,
                       "detail": {"planned_start": r.planned_start.isoformat(),
                                  "due_at": at.isoformat()}}
                      for r, kind, at in new])
    for r, kind, _ in new:
        counts[f"alert_opened_{kind}"] += 1
        for address in oncall_addresses(r.oncall_emails):
            subject, body = message(kind, r, base_url)
            outbox.enqueue_email(session, organisation_id=r.organisation_id, to=address,
                                 subject=subject, body=body,
                                 dedupe_key=f"visit-alert:{r.id}:{kind}:{address.lower()}",
                                 now=now)
            counts["emails_queued"] += 1
    log.info("visit alerts: %s", ", ".join(f"{kind} on visit {r.id}" for r, kind, _ in new[:20]))
    return counts


def _insert(session: Session, rows: list[dict]) -> None:
    name = session.get_bind().dialect.name
    insert = (postgresql.insert if name == "postgresql" else sqlite.insert)(Alert.__table__)
    session.execute(insert.on_conflict_do_nothing(
        index_elements=["visit_id", "kind"], index_where=text(ONE_VISIT_ALERT)), rows)


def message(kind: str, r, base_url: str) -> tuple[str, str]:
    """Subject and body, French then English, times in the agency's time zone."""
    tz = ZoneInfo(r.timezone)
    start, end = r.planned_start.astimezone(tz), r.planned_end.astimezone(tz)
    when_fr = f"le {start:%d/%m/%Y} de {start:%H:%M} à {end:%H:%M}"
    when_en = f"on {start:%Y-%m-%d} from {start:%H:%M} to {end:%H:%M}"
    link = f"{base_url}/visits/{r.id}"
    if kind == "late":
        fr = f"aucune arrivée pointée {r.late_min} min après l'heure prévue."
        en = f"no arrival clocked {r.late_min} min after the planned start."
    else:
        fr = "aucune arrivée pointée : l'intervention n'a pas eu lieu ou n'a pas été pointée."
        en = "no arrival clocked: the visit did not happen or was not clocked."
    subject = f"{_SUBJECT[kind]} — {r.client} {start:%H:%M}"
    body = (f"{_SUBJECT[kind].split(' · ')[0]} : {r.client}, intervenant·e {r.caregiver}, "
            f"prévue {when_fr} ({r.timezone}) ; {fr}\n"
            f"Voir l'intervention : {link}\n\n"
            f"{_SUBJECT[kind].split(' · ')[1]}: {r.client}, caregiver {r.caregiver}, "
            f"planned {when_en} ({r.timezone}); {en}\n"
            f"Open the visit: {link}\n")
    return subject, body


def _close(session: Session, now: datetime) -> Counter:
    """Resolve the open late/missed alerts whose visit started, was corrected or cancelled
    (or whose caregiver left)."""
    counts: Counter = Counter()
    rows = session.execute(
        select(Alert.id, Visit.status, VisitRecord.actual_start, VisitRecord.correction_code,
               Caregiver.active)
        .join(Visit, Visit.id == Alert.visit_id)
        .join(Caregiver, Caregiver.id == Visit.caregiver_id)
        .outerjoin(VisitRecord, VisitRecord.visit_id == Visit.id)
        .where(Alert.kind.in_(VISIT_ALERT_KINDS), Alert.resolved_at.is_(None))).all()
    by_reason: dict[str, list[int]] = {}
    for r in rows:
        reason = ("arrived" if r.actual_start is not None
                  else "corrected" if r.correction_code is not None
                  else "cancelled" if r.status == "cancelled"
                  else "caregiver_inactive" if not r.active else None)
        if reason:
            by_reason.setdefault(reason, []).append(r.id)
    for reason, ids in by_reason.items():
        for alert in session.scalars(select(Alert).where(Alert.id.in_(ids))):
            alert.resolved_at, alert.resolved = now, True
            alert.detail = {**(alert.detail or {}), "closed_by": reason}
        counts["alert_resolved"] += len(ids)
    if by_reason:
        session.flush()
        log.info("visit alerts closed: %s", {k: len(v) for k, v in by_reason.items()})
    return counts


def open_by_visit(session: Session, visit_ids: list[int]) -> dict[int, str]:
    """The most serious open visit alert of each visit (missed over late): for the board."""
    out: dict[int, str] = {}
    if not visit_ids:
        return out
    for visit_id, kind in session.execute(select(Alert.visit_id, Alert.kind).where(
            Alert.visit_id.in_(visit_ids), Alert.kind.in_(VISIT_ALERT_KINDS),
            Alert.resolved_at.is_(None))):
        if out.get(visit_id) != "missed":
            out[visit_id] = kind
    return out
