"""Today's board: planned against actual, per visit, for the manager.

Server-rendered HTML; the only script re-fetches the table body every few seconds so that a
clock-in shows up without a reload. Data comes from `board_rows`, a plain data function.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from fleet.i18n import N_
from fleet.matching import CLOCK_OFF_S
from fleet.models import (Anomaly, Caregiver, Client, ClockEvent, Device, Organisation, Visit,
                          VisitRecord)
from fleet.visit_alerts import open_by_visit

STATUS_LABELS = {
    "done": N_("done"),
    "in_progress": N_("in progress"),
    "late": N_("late"),
    "missing": N_("missing"),
    "upcoming": N_("upcoming"),
    "cancelled": N_("cancelled"),
}
ALERT_LABELS = {  # an open visit alert: the on-call coordinators were e-mailed
    "late": N_("late alert"),
    "missed": N_("missed alert"),
}


@dataclass
class BoardRow:
    visit_id: int
    client: str
    caregiver: str
    planned_start: datetime
    planned_end: datetime
    actual_start: datetime | None
    actual_end: datetime | None
    status: str
    late_min: int
    anomalies: int
    # the retained period (fleet.retained, or a correction) and its ESPPADOM code, if any
    retained_start: datetime | None = None
    retained_end: datetime | None = None
    code: str | None = None
    alert: str | None = None  # the open late/missed alert (fleet.visit_alerts), if any
    # the proof levels of the arrival and the departure (fleet.presence), if clocked
    proof_in: str | None = None
    proof_out: str | None = None
    # the last measured clock offset (fleet time − device time, s) of the device that clocked
    # the visit: a tag when beyond CLOCK_OFF_S (issue #11 item 4)
    clock_offset_s: int | None = None

    @property
    def clock_wrong(self) -> bool:
        return self.clock_offset_s is not None and abs(self.clock_offset_s) > CLOCK_OFF_S


def live_status(visit: Visit, record: VisitRecord | None, now: datetime, tol: timedelta) -> str:
    """What the manager needs to know now, derived from the planning and the clock-ins."""
    if visit.status == "cancelled":
        return "cancelled"
    if record and record.actual_end:
        return "done"
    if record and record.actual_start:
        return "in_progress"
    if now > visit.planned_end:
        return "missing"
    if now > visit.planned_start + tol:
        return "late"
    return "upcoming"


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)
    return start, start + timedelta(days=1)


def board_rows(session: Session, org: Organisation, day: date, now: datetime,
               status: str | None = None, caregiver_id: int | None = None,
               client_id: int | None = None) -> list[BoardRow]:
    tz = ZoneInfo(org.timezone)
    lo, hi = day_bounds(day, tz)
    tol = timedelta(minutes=org.tolerance_min)
    anomalies = (select(Anomaly.visit_id, func.count().label("n"))
                 .where(Anomaly.visit_id.is_not(None), Anomaly.resolved.is_(False))
                 .group_by(Anomaly.visit_id).subquery())
    arrival, departure = aliased(ClockEvent), aliased(ClockEvent)
    q = (select(Visit, VisitRecord, Client.name, Caregiver.name, anomalies.c.n,
                arrival.proof_level, departure.proof_level, Device.clock_offset_s)
         .join(Client, Client.id == Visit.client_id)
         .join(Caregiver, Caregiver.id == Visit.caregiver_id)
         .outerjoin(VisitRecord, VisitRecord.visit_id == Visit.id)
         .outerjoin(anomalies, anomalies.c.visit_id == Visit.id)
         .outerjoin(arrival, arrival.id == VisitRecord.start_event_id)
         .outerjoin(departure, departure.id == VisitRecord.end_event_id)
         # the device that clocked the arrival, else the departure
         .outerjoin(Device, Device.id == func.coalesce(arrival.device_id, departure.device_id))
         .where(Visit.organisation_id == org.id, Visit.planned_start >= lo,
                Visit.planned_start < hi)
         .order_by(Visit.planned_start, Visit.id))
    if caregiver_id:
        q = q.where(Visit.caregiver_id == caregiver_id)
    if client_id:
        q = q.where(Visit.client_id == client_id)
    rows = []
    for visit, record, client, caregiver, n, proof_in, proof_out, offset in session.execute(q):
        st = live_status(visit, record, now, tol)
        start = record.actual_start if record else None
        late = int((start - visit.planned_start).total_seconds() // 60) if start else 0
        rows.append(BoardRow(visit.id, client, caregiver, visit.planned_start, visit.planned_end,
                             start, record.actual_end if record else None, st, max(late, 0),
                             int(n or 0), record.retained_start if record else None,
                             record.retained_end if record else None,
                             record.correction_code if record else None,
                             proof_in=proof_in, proof_out=proof_out, clock_offset_s=offset))
    alerts = open_by_visit(session, [r.visit_id for r in rows])
    for r in rows:
        r.alert = alerts.get(r.visit_id)
        if r.alert and r.status == "upcoming":  # past the alert threshold, within the tolerance
            r.status = "late"
    return [r for r in rows if not status or r.status == status]


def recent_anomalies(session: Session, org: Organisation, limit: int = 10) -> list[Anomaly]:
    return list(session.scalars(
        select(Anomaly).where(Anomaly.organisation_id == org.id, Anomaly.resolved.is_(False))
        .order_by(Anomaly.id.desc()).limit(limit)))
