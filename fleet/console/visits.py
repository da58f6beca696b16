"""A visit's page: planned, raw and retained periods side by side, what happened at the home,
the corrections and the audit; the correction form and validate / reopen.

Planners only. The data functions are fleet.visit_detail, fleet.corrections and
fleet.validation (the same rules as the API); a refusal shows the page again with its message
and nothing is kept. Every write is audited by the data layer as the signed-in person.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from fleet import corrections, validation
from fleet.console.auth import Viewer
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.i18n import N_
from fleet.models import Organisation, Visit
from fleet.visit_detail import visit_detail

router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]

class FormProblem(ValueError):
    """A field the coordinator must fix; the page is shown again with her values."""


def org_of(session: Session, viewer: Viewer) -> Organisation:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    return org


def visit_of(session: Session, org: Organisation, visit_id: int) -> Visit:
    visit = session.get(Visit, visit_id)
    if visit is None or visit.organisation_id != org.id:
        raise Missing(f"No visit {visit_id} · Aucune intervention {visit_id}")
    return visit


def code_choices() -> list[tuple[str, str]]:
    """(code, "English · Français") for every correction code, in the data layer's order."""
    return [(c, f"{en} · {fr}") for c, (en, fr) in corrections.CODES.items()]


def as_time(t: datetime | str | None) -> datetime | None:
    """The data layer's times come as datetimes or as ISO strings (visit_detail is JSON)."""
    return datetime.fromisoformat(t) if isinstance(t, str) else t


def formatter(tz: ZoneInfo, pattern: str):
    """A template filter: a time (datetime or ISO string) in the agency's zone, or a dash."""
    def fmt(t: datetime | str | None) -> str:
        t = as_time(t)
        return t.astimezone(tz).strftime(pattern) if t else "—"
    return fmt


def local_input(t: datetime | str | None, tz: ZoneInfo) -> str:
    """A time as a <input type=datetime-local> value in the agency's time zone."""
    t = as_time(t)
    return t.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if t else ""


def read_time(raw: str, tz: ZoneInfo, what: str) -> datetime | None:
    """A datetime-local field (agency time) as UTC; empty is None (no time)."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        local = datetime.fromisoformat(raw.replace(" ", "T"))
    except ValueError:
        raise FormProblem(f"{what}: {raw!r} is not a date and time (YYYY-MM-DDTHH:MM) · "
                          "n'est pas une date et heure") from None
    if local.tzinfo is not None:
        return local.astimezone(timezone.utc)
    when = local.replace(tzinfo=tz)
    if when.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != local:
        raise FormProblem(f"{what}: {raw} does not exist (clocks change) · heure inexistante "
                          "(changement d'heure)")
    return when.astimezone(timezone.utc)


def refusal(e: corrections.CorrectionRefused | validation.ValidationRefused) -> tuple[int, str]:
    """(HTTP status, message) of a refusal by fleet.corrections or fleet.validation."""
    return e.status, e.message


def _page(request: Request, session: Session, viewer: Viewer, org: Organisation, visit: Visit,
          error: str | None = None, status_code: int = 200,
          values: dict | None = None) -> Response:
    tz = ZoneInfo(org.timezone)
    d = visit_detail(session, visit)
    suggested = d["suggested_code"]
    # the retained period in force; a missing side the suggested code needs, the planned one
    form = {"arrival": local_input(d["retained"]["start"] or (
                visit.planned_start if suggested in ("COA", "CO2", "CRE") else None), tz),
            "departure": local_input(d["retained"]["end"] or (
                visit.planned_end if suggested in ("COD", "CO2", "CRE") else None), tz),
            "code": suggested, "why": ""}
    form.update(values or {})
    return page(request, "visit.html", viewer, status_code, org=org, visit=visit, d=d,
                codes=code_choices(), form=form, suggested=suggested, error=error,
                locked=d["validation"]["locked"], fmt=formatter(tz, "%H:%M"),
                fmt_day=formatter(tz, "%Y-%m-%d %H:%M"))


@router.get("/visits/{visit_id}")
def visit_page(visit_id: int, request: Request, session: SessionDep,
               viewer: PlannerDep) -> Response:
    org = org_of(session, viewer)
    return _page(request, session, viewer, org, visit_of(session, org, visit_id))


def back_to(back: str, visit: Visit) -> str:
    """Where to go after a write: the review list when the click came from it."""
    return back if back.startswith("/review") else f"/visits/{visit.id}"


@router.post("/visits/{visit_id}/corrections")
def correct_visit(visit_id: int, request: Request, session: SessionDep,
                  viewer: PlannerPostDep, arrival: FormStr = "", departure: FormStr = "",
                  code: FormStr = "", why: FormStr = "", back: FormStr = "") -> Response:
    org = org_of(session, viewer)
    visit = visit_of(session, org, visit_id)
    tz = ZoneInfo(org.timezone)
    values = {"arrival": arrival, "departure": departure, "code": code, "why": why}
    try:
        corrections.correct(session, visit, code=code.strip().upper() or None,
                            arrival=read_time(arrival, tz, N_("arrival")),
                            departure=read_time(departure, tz, N_("departure")),
                            why=why, who=viewer.who, role=viewer.role,
                            organisation_id=org.id)
        session.commit()
    except FormProblem as e:
        session.rollback()
        return _page(request, session, viewer, org, visit, str(e), 422, values)
    except corrections.CorrectionRefused as e:
        session.rollback()
        status, message = refusal(e)
        return _page(request, session, viewer, org, visit, message, status, values)
    return redirect(back_to(back, visit), "corrected")


@router.post("/visits/{visit_id}/validate")
def validate_visit(visit_id: int, request: Request, session: SessionDep,
                   viewer: PlannerPostDep, back: FormStr = "") -> Response:
    org = org_of(session, viewer)
    visit = visit_of(session, org, visit_id)
    try:
        validation.validate_visit(session, visit, viewer.who, viewer.role,
                                  organisation_id=org.id)
        session.commit()
    except validation.ValidationRefused as e:
        session.rollback()
        status, message = refusal(e)
        return _page(request, session, viewer, org, visit, message, status)
    return redirect(back_to(back, visit), "validated")


@router.post("/visits/{visit_id}/reopen")
def reopen_visit(visit_id: int, request: Request, session: SessionDep,
                 viewer: PlannerPostDep, why: FormStr = "") -> Response:
    org = org_of(session, viewer)
    visit = visit_of(session, org, visit_id)
    try:
        validation.reopen_visit(session, visit, viewer.who, viewer.role, why,
                                organisation_id=org.id)
        session.commit()
    except validation.ValidationRefused as e:
        session.rollback()
        status, message = refusal(e)
        return _page(request, session, viewer, org, visit, message, status,
                     {"reopen_why": why})
    return redirect(f"/visits/{visit.id}", "reopened")
