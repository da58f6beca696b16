"""The week view (per caregiver or per client, seven columns, conflicts shown) and the
reassignment of a caregiver's visits to another one (fleet.week holds the rules).

Planners only. A reassignment whose conflicts were not confirmed is refused with the list, and
the page asks for the confirmation; nothing is changed until it is given.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import week
from fleet.console.auth import Viewer
from fleet.console.planning import _names, _org
from fleet.console.web import PlannerDep, PlannerPostDep, SessionDep, page, redirect
from fleet.directory import PlanningError
from fleet.i18n import N_
from fleet.models import Caregiver, Client, Organisation, Visit
from fleet.types import plain_int

router = APIRouter(include_in_schema=False)
DAY_NAMES = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"),
             N_("Sun"))


def _week_page(request: Request, session: Session, viewer: Viewer, org: Organisation,
               day: date, caregiver_id: int | None, client_id: int | None,
               error: str | None = None, status_code: int = 200,
               values: dict | None = None) -> Response:
    tz = ZoneInfo(org.timezone)
    caregivers = _names(session, Caregiver, org)
    clients = _names(session, Client, org)
    if caregiver_id is None and client_id is None and caregivers:
        caregiver_id = caregivers[0].id
    w = week.week_of(session, org, day, caregiver_id=caregiver_id, client_id=client_id)
    names = {c.id: c.name for c in session.scalars(select(Client).where(
        Client.organisation_id == org.id))}
    names_g = {g.id: g.name for g in session.scalars(select(Caregiver).where(
        Caregiver.organisation_id == org.id))}
    return page(request, "week.html", viewer, status_code, org=org, w=w, error=error,
                caregiver_id=caregiver_id, client_id=client_id, caregivers=caregivers,
                clients=clients, client_names=names, caregiver_names=names_g,
                day_names=DAY_NAMES, values=values or {},
                prev=w.monday - timedelta(days=7), next=w.monday + timedelta(days=7),
                fmt=lambda t: t.astimezone(tz).strftime("%H:%M"))


@router.get("/planning/week")
def week_view(request: Request, session: SessionDep, viewer: PlannerDep,
              day: Annotated[date | None, Query()] = None,
              caregiver_id: Annotated[str | None, Query()] = None,
              client_id: Annotated[str | None, Query()] = None) -> Response:
    org = _org(session, viewer)
    day = day or datetime.now(ZoneInfo(org.timezone)).date()
    return _week_page(request, session, viewer, org, day, plain_int(caregiver_id),
                      plain_int(client_id))


@router.post("/planning/week/reassign")
async def reassign(request: Request, session: SessionDep, viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    form = await request.form()
    try:
        day = date.fromisoformat(str(form.get("day", "")))
    except ValueError:
        day = datetime.now(ZoneInfo(org.timezone)).date()
    caregiver_id = plain_int(str(form.get("caregiver_id", "")))
    ids = [i for i in (plain_int(str(x)) for x in form.getlist("visit_id")) if i is not None]
    values = {"to": str(form.get("to", "")), "visit_ids": set(ids)}
    chosen = list(session.scalars(select(Visit).where(Visit.organisation_id == org.id,
                                                      Visit.id.in_(ids)))) if ids else []
    try:
        to = plain_int(values["to"])
        if to is None:
            raise PlanningError(422, N_("choose a caregiver"))
        if not chosen:
            raise PlanningError(422, N_("tick the visits to reassign"))
        week.reassign(session, org, chosen, to, who=viewer.who, role=viewer.role,
                      confirm=form.get("confirm") == "on")
        session.commit()
    except PlanningError as e:
        session.rollback()
        return _week_page(request, session, viewer, org, day, caregiver_id, None, e.message,
                          e.status, {**values, "ask_confirm": e.status == 409})
    return redirect(f"/planning/week?day={day.isoformat()}&caregiver_id={to}", "saved")
