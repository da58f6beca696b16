"""Visit series: recurring visits (fleet.visit_series), expanded into plain visits ahead; the
week of a caregiver or client with its conflicts, and reassignment (fleet.week)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from fleet import visit_series, week
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, PageDep, SessionDep
from fleet.api.schemas import Out, VisitOut
from fleet.models import Caregiver, Client, Organisation, Visit, VisitSeries

router = APIRouter()


class VisitSeriesIn(BaseModel):
    client_id: int
    caregiver_id: int
    service_id: int | None = None
    rrule: str = Field(max_length=200, description="RFC 5545 RRULE, day-level: e.g. "
                       "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR or FREQ=WEEKLY;INTERVAL=2;BYDAY=MO")
    starts_on: date = Field(description="the first day (local), DTSTART's date")
    ends_on: date | None = Field(None, description="the last day (local); none: the "
                                 "rolling horizon bounds the expansion")
    at: str = Field(pattern=r"^\d{1,2}:\d{2}$", description="local start time, HH:MM")
    duration_min: int = Field(ge=1, le=visit_series.MAX_DURATION_MIN)


class VisitSeriesPatch(BaseModel):
    scope: Literal["this", "following"] = Field(
        description="this: the visit of `day` only; following: split the series at `day`")
    day: date = Field(description="the occurrence (local day) the change starts from")
    caregiver_id: int | None = None
    client_id: int | None = None
    service_id: int | None = None
    at: str | None = Field(None, pattern=r"^\d{1,2}:\d{2}$")
    duration_min: int | None = Field(None, ge=1, le=visit_series.MAX_DURATION_MIN)
    rrule: str | None = Field(None, max_length=200, description="following only")


class VisitSeriesOut(Out):
    id: int
    organisation_id: int
    client_id: int
    caregiver_id: int
    service_id: int | None
    rrule: str
    starts_on: date
    ends_on: date | None
    at: str
    duration_min: int
    exdates: list[str]
    expanded_until: date | None
    split_from_id: int | None
    created_at: datetime


class VisitSeriesDetailOut(VisitSeriesOut):
    visits: list[VisitOut]


def _detail(session, series: VisitSeries) -> dict:
    made = session.scalars(select(Visit).where(Visit.series_id == series.id)
                           .order_by(Visit.planned_start)).all()
    return {**VisitSeriesOut.model_validate(series).model_dump(),
            "visits": [VisitOut.model_validate(v) for v in made]}


@router.post("/visit-series", status_code=201, response_model=VisitSeriesDetailOut,
             dependencies=[PLANNERS], tags=["visits"])
def create_series(body: VisitSeriesIn, session: SessionDep, key: KeyDep):
    """A recurring visit; its visits are made at once up to the horizon (8 weeks), then by
    the worker's daily job. A malformed RRULE, a COUNT or UNTIL out of reason, a day already
    planned: 422 or 409 and nothing is made."""
    client = session.get(Client, body.client_id)
    if client is None:
        raise HTTPException(422, f"client {body.client_id} not found · usager introuvable")
    org = data.org_for_write(session, key, client.organisation_id)
    with data.refused():
        series = visit_series.create(
            session, org, client_id=body.client_id, caregiver_id=body.caregiver_id,
            service_id=body.service_id, rrule_text=body.rrule, starts_on=body.starts_on,
            ends_on=body.ends_on, at=body.at, duration_min=body.duration_min,
            today=visit_series.today_in(session, org), who=data.who(key))
    session.commit()
    return _detail(session, series)


@router.get("/visit-series", tags=["visits"])
def list_series(session: SessionDep, key: KeyDep, page: PageDep, client_id: int | None = None,
                caregiver_id: int | None = None) -> dict:
    stmt = data.scope(select(VisitSeries).order_by(VisitSeries.id), key,
                      VisitSeries.organisation_id)
    for col, val in ((VisitSeries.client_id, client_id),
                     (VisitSeries.caregiver_id, caregiver_id)):
        if val is not None:
            stmt = stmt.where(col == val)
    return data.page(session, stmt, page.limit, page.offset, VisitSeriesOut.model_validate)


@router.get("/visit-series/{series_id}", response_model=VisitSeriesDetailOut, tags=["visits"])
def get_series(series_id: int, session: SessionDep, key: KeyDep):
    return _detail(session, data.get_scoped(session, key, VisitSeries, series_id))


@router.patch("/visit-series/{series_id}", response_model=VisitSeriesDetailOut,
              dependencies=[PLANNERS], tags=["visits"])
def update_series(series_id: int, body: VisitSeriesPatch, session: SessionDep, key: KeyDep):
    """Change the visit of `day` (`scope: this`) or the series from `day` on (`scope:
    following`: the series is split, the answer is the new one). A change that would plan a
    visit twice or touch a validated one: 409 and nothing is changed."""
    series = data.get_scoped(session, key, VisitSeries, series_id)
    changes = body.model_dump(exclude_unset=True, exclude={"scope", "day"})
    with data.refused():
        if body.scope == "this":
            visit_series.edit_this(session, series, body.day, changes, who=data.who(key))
        else:
            org = session.get(Organisation, series.organisation_id)
            series = visit_series.split(session, series, body.day, changes,
                                        today=visit_series.today_in(session, org),
                                        who=data.who(key))
    session.commit()
    return _detail(session, series)


@router.post("/visit-series/{series_id}/occurrences/{day}/cancel",
             response_model=VisitSeriesDetailOut, dependencies=[PLANNERS], tags=["visits"])
def cancel_occurrence(series_id: int, day: date, session: SessionDep, key: KeyDep):
    """Take one day out of the series (an EXDATE) and cancel its visit."""
    series = data.get_scoped(session, key, VisitSeries, series_id)
    with data.refused():
        visit_series.cancel_occurrence(session, series, day, who=data.who(key))
    session.commit()
    return _detail(session, series)


# -- week views and reassignment (fleet.week) ---------------------------------------------------
class ReassignIn(BaseModel):
    visit_ids: list[int] = Field(min_length=1, max_length=500)
    caregiver_id: int = Field(description="who takes the visits")
    confirm: bool = Field(False, description="reassign even when the caregiver's planning "
                          "has conflicts (else 409 listing them)")


@router.get("/week", tags=["visits"])
def get_week(session: SessionDep, key: KeyDep, day: date, caregiver_id: int | None = None,
             client_id: int | None = None, organisation_id: int | None = None) -> dict:
    """The week (Monday to Sunday, the agency's days) holding `day` of one caregiver or one
    client: its visits and, per visit id, its conflicts (fleet.week.conflicts_for)."""
    if (caregiver_id is None) == (client_id is None):
        raise HTTPException(422, "give caregiver_id or client_id · l'un ou l'autre")
    model = Caregiver if caregiver_id is not None else Client
    who = data.get_scoped(session, key, model, caregiver_id or client_id)
    org = session.get(Organisation, who.organisation_id)
    w = week.week_of(session, org, day, caregiver_id=caregiver_id, client_id=client_id)
    return {"monday": w.monday.isoformat(),
            "visits": [VisitOut.model_validate(v).model_dump(mode="json") for v in w.visits],
            "conflicts": {str(k): v for k, v in w.conflicts.items()}}


@router.post("/reassignments", dependencies=[PLANNERS], tags=["visits"])
def reassign(body: ReassignIn, session: SessionDep, key: KeyDep) -> dict:
    """Give visits to another caregiver, her conflicts checked first; audited; the devices get
    the change at the next planning push."""
    chosen = [data.get_scoped(session, key, Visit, i) for i in dict.fromkeys(body.visit_ids)]
    orgs = {v.organisation_id for v in chosen}
    if len(orgs) > 1:
        raise HTTPException(422, "the visits belong to several organisations")
    org = session.get(Organisation, orgs.pop())
    with data.refused():
        accepted = week.reassign(session, org, chosen, body.caregiver_id, who=data.who(key),
                                 confirm=body.confirm)
    session.commit()
    return {"reassigned": [v.id for v in chosen if v.caregiver_id == body.caregiver_id],
            "caregiver_id": body.caregiver_id,
            "conflicts_accepted": {str(k): v for k, v in accepted.items()}}
