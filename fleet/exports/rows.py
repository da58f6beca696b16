"""The visits an export reads, streamed: one SQL query over a server-side cursor (yield_per),
and the small things each row refers to (clients, caregivers, services, plans) loaded once.

A visit is exported when it has a record (a clock event or a correction made one); a visit
nobody clocked and nobody corrected did not happen as far as pay and billing know. The range
is in local days of the agency (`from` and `to` both included), on the planned start.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from fleet.models import Caregiver, Client, ClockEvent, Organisation, Service, Visit, \
    VisitRecord
from fleet.retained import minutes as retained_minutes

BATCH = 2000  # rows fetched per round trip of the server-side cursor


class ExportError(Exception):
    """Refused before anything is written: `status` is what the API answers (404, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class VisitRow(NamedTuple):
    id: int
    client_id: int
    caregiver_id: int
    service_id: int | None
    planned_start: datetime
    planned_end: datetime
    status: str
    actual_start: datetime | None
    actual_end: datetime | None
    retained_start: datetime | None
    retained_end: datetime | None
    correction_code: str | None
    km: int | None
    expenses_cents: int | None
    validated_at: datetime | None
    start_method: str | None
    end_method: str | None
    start_proof: str | None  # the proof levels of the arrival and departure (fleet.presence)
    end_proof: str | None


@dataclass(frozen=True)
class Range:
    """Local days `first`..`last` (both included) of an agency, and their UTC bounds."""

    first: date
    last: date
    tz: ZoneInfo

    @property
    def lo(self) -> datetime:
        return datetime.combine(self.first, time(0), self.tz)

    @property
    def hi(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), self.tz)

    def day_of(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()


def day_range(org: Organisation, first: date, last: date) -> Range:
    if last < first:
        raise ExportError(422, f"the range ends ({last}) before it starts ({first})")
    if (last - first).days > 366:
        raise ExportError(422, "export at most a year (366 days) at a time")
    return Range(first, last, ZoneInfo(org.timezone))


def organisation(session: Session, org_id: int) -> Organisation:
    org = session.get(Organisation, org_id)
    if org is None:
        raise ExportError(404, f"organisation {org_id} not found")
    return org


def visits(session: Session, org_id: int, span: Range, order: str = "start"
           ) -> Iterator[VisitRow]:
    """Exported visits of the range, ordered by planned start (`start`), or by caregiver
    (`caregiver`) or client (`client`) then planned start; streamed."""
    start_ev, end_ev = aliased(ClockEvent), aliased(ClockEvent)
    r = VisitRecord
    stmt = (select(Visit.id, Visit.client_id, Visit.caregiver_id, Visit.service_id,
                   Visit.planned_start, Visit.planned_end, Visit.status,
                   r.actual_start, r.actual_end, r.retained_start, r.retained_end,
                   r.correction_code, r.km, r.expenses_cents, r.validated_at,
                   start_ev.method, end_ev.method, start_ev.proof_level, end_ev.proof_level)
            .join(r, r.visit_id == Visit.id)
            .outerjoin(start_ev, start_ev.id == r.start_event_id)
            .outerjoin(end_ev, end_ev.id == r.end_event_id)
            .where(Visit.organisation_id == org_id, Visit.planned_start >= span.lo,
                   Visit.planned_start < span.hi))
    first = {"start": (), "caregiver": (Visit.caregiver_id,), "client": (Visit.client_id,)}
    stmt = stmt.order_by(*first[order], Visit.planned_start, Visit.id)
    result = session.execute(stmt.execution_options(yield_per=BATCH))
    try:
        for row in result:
            yield VisitRow(*row)
    finally:
        result.close()


def people(session: Session, org_id: int) -> tuple[dict[int, Any], dict[int, Any],
                                                     dict[int, Any]]:
    """Clients, caregivers and services of the agency by id (rows, not ORM objects)."""
    clients = {c.id: c for c in session.execute(
        select(Client.id, Client.name, Client.address, Client.postcode, Client.city,
               Client.birth_date).where(Client.organisation_id == org_id))}
    carers = {c.id: c for c in session.execute(
        select(Caregiver.id, Caregiver.name).where(Caregiver.organisation_id == org_id))}
    services = {s.id: s for s in session.execute(
        select(Service.id, Service.name, Service.code).where(
            Service.organisation_id == org_id))}
    return clients, carers, services


def minutes(start: datetime | None, end: datetime | None) -> int | None:
    """Whole minutes from start to end, as the retained rules count them (fleet.retained:
    seconds dropped), never below zero (clocks out of order count nothing)."""
    counted = retained_minutes(start, end)
    return None if counted is None else max(0, counted)
