"""Absences: list, record, approve, refuse, cancel; the visits to replace (fleet.absences)."""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from fleet import absences
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, PageDep, SessionDep
from fleet.models import ABSENCE_STATES, Absence, Caregiver, Client

router = APIRouter(tags=["absences"])
Kind = Literal["leave", "sick", "training", "other"]
State = Literal["requested", "approved", "refused", "cancelled"]
assert State.__args__ == ABSENCE_STATES  # type: ignore[attr-defined]


class AbsenceIn(BaseModel):
    """Whole days from `first_day` to `last_day` (the agency's days), or, with both times,
    from `start_time` on the first day to `end_time` on the last. Recorded by the office, it is
    approved at once."""

    caregiver_id: int
    kind: Kind
    first_day: date
    last_day: date
    start_time: time | None = None
    end_time: time | None = None
    note: str = Field("", max_length=absences.NOTE_MAX)


class Decision(BaseModel):
    reason: str = Field("", max_length=absences.REASON_MAX,
                        description="required to refuse; the caregiver reads it in the app")


class AbsenceOut(BaseModel):
    id: int
    caregiver_id: int
    kind: Kind
    state: State
    all_day: bool
    starts_at: datetime
    ends_at: datetime
    first_day: date
    last_day: date
    start_time: str | None
    end_time: str | None
    note: str
    reason: str | None
    requested_by: str
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    visits_covered: list[int] = Field(description="visits of the caregiver the period touches")


def _out(session, absence: Absence) -> dict:
    doc = absences.as_dict(absence, absences.organisation_tz(session, absence.organisation_id))
    doc["visits_covered"] = [v.id for v in absences.covered_visits(session, absence)]
    return doc


def _refused(e: absences.AbsenceRefused) -> HTTPException:
    return HTTPException(e.status, e.message)


@router.get("/absences")
def list_absences(session: SessionDep, key: KeyDep, page: PageDep,
                  caregiver_id: int | None = None, state: State | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  organisation_id: int | None = None) -> dict:
    """Newest period first; `since` / `until` keep the absences that touch that span."""
    stmt = data.scope(select(Absence).order_by(Absence.starts_at.desc(), Absence.id.desc()),
                      key, Absence.organisation_id)
    for col, val in ((Absence.caregiver_id, caregiver_id), (Absence.state, state),
                     (Absence.organisation_id, organisation_id)):
        if val is not None:
            stmt = stmt.where(col == val)
    if since is not None:
        stmt = stmt.where(Absence.ends_at > since)
    if until is not None:
        stmt = stmt.where(Absence.starts_at < until)
    return data.page(session, stmt, page.limit, page.offset, lambda a: _out(session, a))


@router.post("/absences", status_code=201, response_model=AbsenceOut, dependencies=[PLANNERS])
def record_absence(body: AbsenceIn, session: SessionDep, key: KeyDep):
    caregiver = data.get_scoped(session, key, Caregiver, body.caregiver_id)
    try:
        when = absences.period(absences.organisation_tz(session, caregiver.organisation_id),
                               body.first_day, body.last_day, body.start_time, body.end_time)
        absence = absences.create(session, caregiver, body.kind, when, body.note,
                                  who=data.who(key), role=key.role, approved=True,
                                  organisation_id=key.organisation_id)
    except absences.AbsenceRefused as e:
        raise _refused(e) from None
    session.commit()
    return _out(session, absence)


@router.get("/absences/to-replace")
def visits_to_replace(session: SessionDep, key: KeyDep, since: datetime | None = None,
                      until: datetime | None = None, organisation_id: int | None = None
                      ) -> dict:
    """Planned visits whose caregiver has an approved absence then: the office reassigns them
    (or cancels the absence). A visit given to someone else leaves the list by itself."""
    if key.organisation_id is not None:
        if organisation_id not in (None, key.organisation_id):
            raise HTTPException(403, "this API key belongs to another organisation")
        organisation_id = key.organisation_id
    rows = absences.to_replace(session, organisation_id, since, until)
    names = {c.id: c.name for c in session.scalars(select(Client).where(
        Client.id.in_({v.client_id for v, _ in rows})))}
    return {"items": [{"visit_id": v.id, "absence_id": a.id, "caregiver_id": v.caregiver_id,
                       "client_id": v.client_id, "client": names.get(v.client_id),
                       "planned_start": v.planned_start.isoformat(),
                       "planned_end": v.planned_end.isoformat()} for v, a in rows],
            "total": len(rows)}


@router.get("/absences/{absence_id}", response_model=AbsenceOut)
def get_absence(absence_id: int, session: SessionDep, key: KeyDep):
    return _out(session, data.get_scoped(session, key, Absence, absence_id))


def _decide(absence_id: int, session, key, action: str, reason: str) -> dict:
    absence = data.get_scoped(session, key, Absence, absence_id)
    try:
        if action == "cancel":
            absences.cancel(session, absence, reason, who=data.who(key), role=key.role,
                            organisation_id=key.organisation_id)
        else:
            absences.decide(session, absence, action == "approve", reason, who=data.who(key),
                            role=key.role, organisation_id=key.organisation_id)
    except absences.AbsenceRefused as e:
        session.rollback()
        raise _refused(e) from None
    session.commit()
    return _out(session, absence)


@router.post("/absences/{absence_id}/approve", response_model=AbsenceOut,
             dependencies=[PLANNERS])
def approve_absence(absence_id: int, body: Decision, session: SessionDep, key: KeyDep):
    """Its planned visits become visits to replace (`GET /absences/to-replace`)."""
    return _decide(absence_id, session, key, "approve", body.reason)


@router.post("/absences/{absence_id}/refuse", response_model=AbsenceOut,
             dependencies=[PLANNERS])
def refuse_absence(absence_id: int, body: Decision, session: SessionDep, key: KeyDep):
    return _decide(absence_id, session, key, "refuse", body.reason)


@router.post("/absences/{absence_id}/cancel", response_model=AbsenceOut,
             dependencies=[PLANNERS])
def cancel_absence(absence_id: int, body: Decision, session: SessionDep, key: KeyDep):
    return _decide(absence_id, session, key, "cancel", body.reason)
