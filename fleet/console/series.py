"""Recurring visits in the console: a series' form (days of the week, every n weeks, first and
last day, time, duration), its page (its visits, cancel one, change from one day on).

Planners only; every rule is fleet.visit_series' (and fleet.visits'), a refusal shows the form
again with its message and nothing is kept. Every write is audited as the signed-in person.
"""
from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import visit_series
from fleet.console import forms
from fleet.console.auth import Viewer
from fleet.console.planning import _names, _org, _scoped
from fleet.console.web import PlannerDep, PlannerPostDep, SessionDep, page, redirect
from fleet.directory import PlanningError
from fleet.i18n import N_
from fleet.models import Caregiver, Client, Organisation, Service, Visit, VisitSeries
from fleet.types import plain_int

router = APIRouter(include_in_schema=False)
DAY_LABELS = (("MO", N_("Mon")), ("TU", N_("Tue")), ("WE", N_("Wed")),
              ("TH", N_("Thu")), ("FR", N_("Fri")), ("SA", N_("Sat")),
              ("SU", N_("Sun")))


def _day(raw: str | None, what: str, required: bool = True) -> date | None:
    raw = (raw or "").strip()
    if not raw and not required:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise PlanningError(422, f"{what}: {raw!r} is not a date (YYYY-MM-DD) · n'est pas "
                                 "une date") from None


def _int(raw: str | None, what: str, required: bool = True) -> int | None:
    n = plain_int(raw)
    if n is None and (required or (raw or "").strip()):
        raise PlanningError(422, f"{what}: give a whole number · nombre entier attendu")
    return n


def _rule_of(form) -> str:
    interval = _int(form.get("interval") or "1", N_("every")) or 1
    return visit_series.weekly_rule(form.getlist("days"), interval)


def _form_page(request: Request, session: Session, viewer: Viewer, org: Organisation,
               values: dict, error: str | None = None, status_code: int = 200,
               series: VisitSeries | None = None, day: date | None = None) -> Response:
    return page(request, "series_form.html", viewer, status_code, org=org, values=values,
                error=error, series=series, day=day, day_labels=DAY_LABELS,
                form_id=values.get("form_id") or forms.new_form_id(),
                clients=_names(session, Client, org), caregivers=_names(session, Caregiver, org),
                services=_names(session, Service, org))


def _values(form) -> dict:
    values = {k: str(v) for k, v in form.items() if k != "days"}
    values["days"] = list(form.getlist("days"))
    return values


@router.get("/planning/series")
def list_series(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    rows = session.execute(
        select(VisitSeries, Client.name, Caregiver.name)
        .join(Client, Client.id == VisitSeries.client_id)
        .join(Caregiver, Caregiver.id == VisitSeries.caregiver_id)
        .where(VisitSeries.organisation_id == org.id).order_by(VisitSeries.id)).all()
    return page(request, "series_list.html", viewer, org=org, rows=rows)


@router.get("/planning/series/new")
def new_series(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    today = visit_series.today_in(session, org)
    return _form_page(request, session, viewer, org, {
        "starts_on": today.isoformat(), "at": "08:00", "duration_min": "60", "interval": "1",
        "days": ["MO", "TU", "WE", "TH", "FR"]})


@router.post("/planning/series")
async def create_series(request: Request, session: SessionDep,
                        viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    form = await request.form()
    values = _values(form)
    form_id = values.get("form_id", "")
    try:
        with forms.once(form_id):
            target = forms.earlier_result(session, viewer.who, form_id)
            if target:
                return redirect(f"/planning/series/{target.partition(':')[2]}", "already")
            series = visit_series.create(
                session, org, client_id=_int(values.get("client_id"), N_("client")),
                caregiver_id=_int(values.get("caregiver_id"), N_("caregiver")),
                service_id=_int(values.get("service_id"), "service", required=False),
                rrule_text=_rule_of(form),
                starts_on=_day(values.get("starts_on"), N_("first day")),
                ends_on=_day(values.get("ends_on"), N_("last day"), required=False),
                at=values.get("at", ""),
                duration_min=_int(values.get("duration_min"), N_("duration")),
                today=visit_series.today_in(session, org), who=viewer.who, role=viewer.role,
                note={"form_id": form_id})
            session.commit()
    except PlanningError as e:
        session.rollback()
        return _form_page(request, session, viewer, org, values, e.message, e.status)
    except ValueError as e:  # a form id that is not one of ours
        session.rollback()
        return _form_page(request, session, viewer, org, values, str(e), 422)
    return redirect(f"/planning/series/{series.id}", "created")


def _series_page(request: Request, session: Session, viewer: Viewer, org: Organisation,
                 series: VisitSeries, error: str | None = None,
                 status_code: int = 200) -> Response:
    tz = ZoneInfo(org.timezone)
    rows = session.execute(
        select(Visit, Caregiver.name).join(Caregiver, Caregiver.id == Visit.caregiver_id)
        .where(Visit.series_id == series.id).order_by(Visit.planned_start)).all()
    return page(request, "series.html", viewer, status_code, org=org, series=series,
                rows=rows, error=error, client=session.get(Client, series.client_id),
                caregiver=session.get(Caregiver, series.caregiver_id),
                fmt=lambda t: t.astimezone(tz).strftime("%H:%M"))


@router.get("/planning/series/{series_id}")
def show_series(series_id: int, request: Request, session: SessionDep,
                viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    return _series_page(request, session, viewer, org, _scoped(session, VisitSeries, series_id,
                                                               org))


@router.post("/planning/series/{series_id}/cancel")
async def cancel_occurrence(series_id: int, request: Request, session: SessionDep,
                            viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    series = _scoped(session, VisitSeries, series_id, org)
    form = await request.form()
    try:
        visit_series.cancel_occurrence(session, series, _day(form.get("day"), N_("day")),
                                       who=viewer.who, role=viewer.role)
        session.commit()
    except PlanningError as e:
        session.rollback()
        return _series_page(request, session, viewer, org, series, e.message, e.status)
    return redirect(f"/planning/series/{series.id}", "saved")


@router.get("/planning/series/{series_id}/following")
def following_form(series_id: int, request: Request, session: SessionDep, viewer: PlannerDep,
                   day: str = "") -> Response:
    org = _org(session, viewer)
    series = _scoped(session, VisitSeries, series_id, org)
    parts = visit_series.parse_rule(series.rrule)
    return _form_page(request, session, viewer, org, {
        "client_id": str(series.client_id), "caregiver_id": str(series.caregiver_id),
        "service_id": str(series.service_id or ""), "at": series.at,
        "duration_min": str(series.duration_min), "interval": parts.get("INTERVAL", "1"),
        "days": parts.get("BYDAY", "").split(","), "starts_on": day},
        series=series, day=_day(day, N_("day")))


@router.post("/planning/series/{series_id}/following")
async def change_following(series_id: int, request: Request, session: SessionDep,
                           viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    series = _scoped(session, VisitSeries, series_id, org)
    form = await request.form()
    values = _values(form)
    day = None
    try:
        day = _day(values.get("starts_on"), N_("from"))
        changes = {"client_id": _int(values.get("client_id"), N_("client")),
                   "caregiver_id": _int(values.get("caregiver_id"), N_("caregiver")),
                   "service_id": _int(values.get("service_id"), "service", required=False),
                   "at": values.get("at", ""),
                   "duration_min": _int(values.get("duration_min"), N_("duration")),
                   "rrule": _rule_of(form)}
        new = visit_series.split(session, series, day, changes,
                                 today=visit_series.today_in(session, org), who=viewer.who,
                                 role=viewer.role, note={"form_id": values.get("form_id", "")})
        session.commit()
    except PlanningError as e:
        session.rollback()
        return _form_page(request, session, viewer, org, values, e.message, e.status,
                          series=series, day=day)
    return redirect(f"/planning/series/{new.id}", "saved")
