"""`/validation`: a month of the agency summed up (visits, validated, to review, corrected by
code), validated at once or reopened with a why (fleet.validation), with the month's exports
a click away (the /exports downloads, fleet.console.exports). Planners only.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet import validation
from fleet.console.auth import Viewer
from fleet.console.visits import code_choices, formatter, org_of, refusal
from fleet.console.web import PlannerDep, PlannerPostDep, SessionDep, page, redirect
from fleet.models import MonthValidation, Organisation, Visit, VisitRecord
from fleet.review import review_items

router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]


def _month(raw: str | None, tz: ZoneInfo) -> str:
    if raw and len(raw) == 7:
        try:
            datetime.strptime(raw, "%Y-%m")
            return raw
        except ValueError:
            pass
    return datetime.now(tz).strftime("%Y-%m")


def month_summary(session: Session, org: Organisation, month: str) -> dict:
    """Visits planned in `month` (not cancelled), how many are validated, what is left to
    review, the corrections in force by code (deletions included), the validation in force
    or the last reopening."""
    lo, hi = validation.month_bounds(org, month)
    of_month = (Visit.organisation_id == org.id, Visit.planned_start >= lo,
                Visit.planned_start < hi)
    kept = (*of_month, Visit.status != "cancelled")
    visits = session.scalar(select(func.count()).select_from(Visit).where(*kept))
    validated = session.scalar(
        select(func.count()).select_from(Visit)
        .join(VisitRecord, VisitRecord.visit_id == Visit.id)
        .where(*kept, VisitRecord.validated_at.is_not(None)))
    by_code = dict(session.execute(
        select(VisitRecord.correction_code, func.count())
        .join(Visit, Visit.id == VisitRecord.visit_id)
        .where(*of_month, VisitRecord.correction_code.is_not(None))
        .group_by(VisitRecord.correction_code).order_by(VisitRecord.correction_code)).all())
    to_review = len(review_items(session, org, lo, hi))
    latest = session.scalars(select(MonthValidation).where(
        MonthValidation.organisation_id == org.id, MonthValidation.month == month)
        .order_by(MonthValidation.id.desc()).limit(1)).first()
    first = lo.date()
    return {"month": month, "first": first, "last": (hi - timedelta(days=1)).date(),
            "visits": visits, "validated": validated, "to_review": to_review,
            "by_code": by_code, "current": latest}


def _validation_page(request: Request, session: Session, viewer: Viewer, org: Organisation,
                     month: str, error: str | None = None, status_code: int = 200,
                     values: dict | None = None) -> Response:
    tz = ZoneInfo(org.timezone)
    month = _month(month, tz)
    first = date.fromisoformat(month + "-01")
    prev = (first - timedelta(days=1)).strftime("%Y-%m")
    following = (first + timedelta(days=32)).strftime("%Y-%m")
    return page(request, "validation.html", viewer, status_code, org=org,
                s=month_summary(session, org, month), prev=prev, next=following, error=error,
                codes=dict(code_choices()), values=values or {},
                fmt_day=formatter(tz, "%Y-%m-%d %H:%M"))


@router.get("/validation")
def validation_page(request: Request, session: SessionDep, viewer: PlannerDep,
                    month: str | None = None) -> Response:
    org = org_of(session, viewer)
    return _validation_page(request, session, viewer, org,
                            _month(month, ZoneInfo(org.timezone)))


@router.post("/validation")
def validate_month(request: Request, session: SessionDep, viewer: PlannerPostDep,
                   month: FormStr = "") -> Response:
    org = org_of(session, viewer)
    month = month.strip()  # a bad one is refused (422), never taken for this month
    try:
        validation.validate_month(session, org, month, viewer.who, viewer.role)
        session.commit()
    except validation.ValidationRefused as e:
        session.rollback()
        status, message = refusal(e)
        return _validation_page(request, session, viewer, org, month, message, status)
    return redirect(f"/validation?month={month}", "month_validated")


@router.post("/validation/reopen")
def reopen_month(request: Request, session: SessionDep, viewer: PlannerPostDep,
                 month: FormStr = "", why: FormStr = "") -> Response:
    org = org_of(session, viewer)
    month = month.strip()
    try:
        validation.reopen_month(session, org, month, viewer.who, viewer.role, why)
        session.commit()
    except validation.ValidationRefused as e:
        session.rollback()
        status, message = refusal(e)
        return _validation_page(request, session, viewer, org, month, message, status,
                                {"why": why})
    return redirect(f"/validation?month={month}", "month_reopened")

