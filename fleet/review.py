"""The "to review" list of an agency's period: what a coordinator checks before validating.

Kinds (`KINDS`): `anomaly` (unresolved anomalies, double taps left out: the second tap was
kept raw and ignored, nothing to do), `manual` (manual clock-ins with the caregiver's reason,
except those a position near the home corroborates: proof level `position`),
`missing_departure` (arrived, no departure, planned end + tolerance past), `missed` (nothing
clocked, planned end past), `late` (arrival past planned start + tolerance), `far_off` (an
arrival earlier, or a departure earlier or later, than planned by more than the tolerance).
Visits are taken by planned start in [start, end), events by device time. Validated visits
are not listed; a visit whose correction is in force is not listed for the time kinds
(`missing_departure`, `missed`, `late`, `far_off`): the coordinator has dealt with it.
Each item carries the proof level of its clock event (fleet.presence), and the list can be
narrowed to some proof levels (items without a clock event, `missed`, are then left out).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from fleet.corrections import suggest_code
from fleet.presence import LEVELS
from fleet.models import Anomaly, ClockEvent, Device, Organisation, Visit, VisitRecord
from fleet.types import utcnow

KINDS = ("anomaly", "manual", "missing_departure", "missed", "late", "far_off")
TIME_KINDS = {"missing_departure", "missed", "late", "far_off"}


@dataclass
class ReviewItem:
    kind: str
    visit_id: int | None
    clock_event_id: int | None
    anomaly_id: int | None
    at: datetime
    detail: str
    suggested_code: str | None
    proof_level: str | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["at"] = self.at.isoformat()
        return d


def _min(delta: timedelta) -> int:
    return int(abs(delta).total_seconds() // 60)


def review_items(session: Session, org: Organisation | int, start: datetime, end: datetime,
                 kinds: set[str] | None = None,
                 proofs: set[str] | None = None) -> list[ReviewItem]:
    """What to review in `org` between `start` and `end`, oldest first, of some proof levels
    only when `proofs` is given. Unknown kinds or levels raise ValueError (the API answers
    422)."""
    kinds = set(KINDS) if not kinds else set(kinds)
    unknown = kinds - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kind {', '.join(sorted(unknown))}: one of {', '.join(KINDS)}")
    bad = set(proofs or ()) - set(LEVELS)
    if bad:
        raise ValueError(f"unknown proof level {', '.join(sorted(bad))}: one of "
                         f"{', '.join(LEVELS)}")
    org = org if isinstance(org, Organisation) else session.get(Organisation, org)
    items: list[ReviewItem] = []
    visits = {v.id: (v, r) for v, r in session.execute(
        select(Visit, VisitRecord).outerjoin(VisitRecord, VisitRecord.visit_id == Visit.id)
        .where(Visit.organisation_id == org.id, Visit.planned_start >= start,
               Visit.planned_start < end))}
    if kinds & TIME_KINDS:
        items += _time_items(org, visits.values(), kinds)
    events = []
    if kinds & {"anomaly", "manual"}:
        events = _event_items(session, org, start, end, kinds)
    # the visits of events and anomalies may lie outside the range: look their records up
    others = {i.visit_id for i in events if i.visit_id and i.visit_id not in visits}
    if others:
        visits.update({v.id: (v, r) for v, r in session.execute(
            select(Visit, VisitRecord).outerjoin(VisitRecord, VisitRecord.visit_id == Visit.id)
            .where(Visit.id.in_(others)))})
    for item in events:
        v, r = visits.get(item.visit_id, (None, None))
        if r is not None and r.validated_at is not None:
            continue
        if v is not None:
            item.suggested_code = suggest_code(v, r)
        items.append(item)
    items = _with_proof(session, items, proofs)
    items.sort(key=lambda i: (i.at, KINDS.index(i.kind), i.visit_id or 0))
    return items


def _with_proof(session: Session, items: list[ReviewItem],
                proofs: set[str] | None) -> list[ReviewItem]:
    """Each item's clock event's proof level; only the levels asked for, if any."""
    ids = {i.clock_event_id for i in items if i.clock_event_id}
    levels = dict(session.execute(select(ClockEvent.id, ClockEvent.proof_level)
                                  .where(ClockEvent.id.in_(ids))).all()) if ids else {}
    for i in items:
        i.proof_level = levels.get(i.clock_event_id) if i.clock_event_id else None
    return [i for i in items if i.proof_level in proofs] if proofs else items


def _time_items(org: Organisation, rows, kinds: set[str]) -> list[ReviewItem]:
    now, tol = utcnow(), timedelta(minutes=org.tolerance_min)
    out: list[ReviewItem] = []

    def add(kind: str, v: Visit, r: VisitRecord | None, at: datetime, detail: str,
            event: int | None = None) -> None:
        if kind in kinds:
            out.append(ReviewItem(kind, v.id, event, None, at, detail, suggest_code(v, r)))

    for v, r in rows:
        if v.status == "cancelled" or (r is not None and (r.validated_at is not None
                                                          or r.correction_code is not None)):
            continue
        a, d = (r.actual_start, r.actual_end) if r is not None else (None, None)
        if a is None and d is None:
            if v.planned_end < now:
                add("missed", v, r, v.planned_start, "nothing clocked · aucun pointage")
            continue
        if a is not None and d is None and v.planned_end + tol < now:
            add("missing_departure", v, r, a, "no departure clocked · départ non pointé",
                r.start_event_id)
        if a is not None and a > v.planned_start + tol:
            m = _min(a - v.planned_start)
            add("late", v, r, a, f"arrived {m} min late · arrivée {m} min en retard",
                r.start_event_id)
        if a is not None and a < v.planned_start - tol:
            m = _min(a - v.planned_start)
            add("far_off", v, r, a, f"arrived {m} min early · arrivée {m} min en avance",
                r.start_event_id)
        if d is not None and abs(d - v.planned_end) > tol:
            m = _min(d - v.planned_end)
            en, fr = ("late", "en retard") if d > v.planned_end else ("early", "en avance")
            add("far_off", v, r, d, f"left {m} min {en} · départ {m} min {fr}",
                r.end_event_id)
    return out


def _event_items(session: Session, org: Organisation, start: datetime, end: datetime,
                 kinds: set[str]) -> list[ReviewItem]:
    out: list[ReviewItem] = []
    if "anomaly" in kinds:
        rows = session.execute(
            select(Anomaly, ClockEvent.device_ts, ClockEvent.visit_id)
            .outerjoin(ClockEvent, ClockEvent.id == Anomaly.clock_event_id)
            .where(Anomaly.organisation_id == org.id, Anomaly.resolved.is_(False),
                   Anomaly.kind != "double_tap",
                   or_(and_(ClockEvent.id.is_not(None), ClockEvent.device_ts >= start,
                            ClockEvent.device_ts < end),
                       and_(ClockEvent.id.is_(None), Anomaly.created_at >= start,
                            Anomaly.created_at < end))))
        for a, ts, event_visit in rows:
            out.append(ReviewItem("anomaly", a.visit_id or event_visit, a.clock_event_id, a.id,
                                  ts or a.created_at, f"{a.kind}: {a.detail}", None))
    if "manual" in kinds:
        rows = session.scalars(
            select(ClockEvent).join(Device, Device.id == ClockEvent.device_id)
            .where(Device.organisation_id == org.id, ClockEvent.method == "manual",
                   ClockEvent.device_ts >= start, ClockEvent.device_ts < end,
                   # a claim a position near the home corroborates is not to review
                   or_(ClockEvent.proof_level.is_(None),
                       ClockEvent.proof_level != "position")))
        for e in rows:
            what = "arrival · arrivée" if e.dir == "in" else "departure · départ"
            out.append(ReviewItem("manual", e.visit_id, e.id, None, e.device_ts,
                                  f"manual {what}: {e.reason or ''}", None))
    return out
