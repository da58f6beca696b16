"""The "to review" list.

`/review` lists what fleet.review finds (anomalies, manual clock-ins with their reason,
missing departures, far-off clocks), each with its clock event's proof level, filtered by kind
and by proof level, with one-click actions: a departure or an arrival set to
the planned time (COD / COA, the why asked in the same row), an anomaly marked handled, the
visit validated. Planners only; a refusal is shown above the list and nothing changes.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit, corrections, presence, review, validation
from fleet.console.auth import Viewer
from fleet.console.visits import code_choices, formatter, org_of, refusal, visit_of
from fleet.console.web import Missing, PlannerDep, PlannerPostDep, SessionDep, page, redirect
from fleet.i18n import N_
from fleet.models import Anomaly, Caregiver, Client, Organisation, Visit

router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]
KIND_LABELS = {
    "anomaly": N_("anomaly"),
    "manual": N_("manual clock-in"),
    "missing_departure": N_("departure not clocked"),
    "missed": N_("nothing clocked"),
    "late": N_("late"),
    "far_off": N_("far from the planned time"),
}
# without dates, the list covers the last weeks: the month-end's and the month before's
DEFAULT_DAYS = 45


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None  # a mangled filter is no filter


def _visits(session: Session, ids: set[int]) -> dict[int, tuple]:
    """visit id -> (Visit, client name, caregiver name)."""
    if not ids:
        return {}
    return {v.id: (v, client, carer) for v, client, carer in session.execute(
        select(Visit, Client.name, Caregiver.name)
        .join(Client, Client.id == Visit.client_id)
        .join(Caregiver, Caregiver.id == Visit.caregiver_id)
        .where(Visit.id.in_(ids)))}


def day_range(day_from: date | None, day_to: date | None,
              tz: ZoneInfo) -> tuple[date, date, datetime, datetime]:
    """The days asked (both included; by default the last DEFAULT_DAYS up to today) and
    their UTC interval in the agency's time zone."""
    today = datetime.now(tz).date()
    last = day_to or today
    first = day_from or min(last, today) - timedelta(days=DEFAULT_DAYS)
    return (first, last, datetime.combine(first, time(0), tz).astimezone(timezone.utc),
            datetime.combine(last + timedelta(days=1), time(0), tz).astimezone(timezone.utc))


def _review_page(request: Request, session: Session, viewer: Viewer, org: Organisation,
                 kind: str | None, day_from: date | None, day_to: date | None,
                 error: str | None = None, status_code: int = 200,
                 proof: str | None = None) -> Response:
    tz = ZoneInfo(org.timezone)
    kind = kind if kind in review.KINDS else None
    proof = proof if proof in presence.LEVELS else None
    first, last, lo, hi = day_range(day_from, day_to, tz)
    items = review.review_items(session, org, lo, hi, {kind} if kind else None,
                                {proof} if proof else None)
    return page(request, "review.html", viewer, status_code, org=org, items=items,
                visits=_visits(session, {i.visit_id for i in items if i.visit_id}),
                kinds={k: KIND_LABELS.get(k, k) for k in review.KINDS}, kind=kind or "",
                proofs=presence.LABELS, proof=proof or "",
                day_from=first, day_to=last, error=error, codes=dict(code_choices()),
                back=str(request.url.path) + ("?" + request.url.query
                                              if request.url.query else ""),
                fmt=formatter(tz, "%H:%M"), fmt_day=formatter(tz, "%Y-%m-%d %H:%M"))


@router.get("/review")
def review_list(request: Request, session: SessionDep, viewer: PlannerDep,
                kind: str | None = None, day_from: Annotated[str | None, Query(alias="from")]
                = None, day_to: Annotated[str | None, Query(alias="to")] = None,
                proof: str | None = None) -> Response:
    org = org_of(session, viewer)
    return _review_page(request, session, viewer, org, kind or None, _day(day_from),
                        _day(day_to), proof=proof or None)


@router.post("/review/visits/{visit_id}/{action}")
def one_click(visit_id: int, action: str, request: Request, session: SessionDep,
              viewer: PlannerPostDep, why: FormStr = "", back: FormStr = "") -> Response:
    """COD: the departure is the planned end; COA: the arrival is the planned start. The
    other side keeps its retained time (fleet.corrections)."""
    if action not in ("cod", "coa"):
        raise Missing(N_("Not found"))
    org = org_of(session, viewer)
    visit = visit_of(session, org, visit_id)
    try:
        corrections.correct(
            session, visit, code=action.upper(),
            arrival=visit.planned_start if action == "coa" else None,
            departure=visit.planned_end if action == "cod" else None,
            why=why, who=viewer.who, role=viewer.role, organisation_id=org.id)
        session.commit()
    except corrections.CorrectionRefused as e:
        session.rollback()
        return _review_page(request, session, viewer, org, None, None, None,
                            f"Visit {visit.id}: {refusal(e)[1]}", refusal(e)[0])
    return redirect(back if back.startswith("/review") else "/review", "corrected")


@router.post("/review/visits/{visit_id}")
def validate_from_review(visit_id: int, request: Request, session: SessionDep,
                         viewer: PlannerPostDep, back: FormStr = "") -> Response:
    org = org_of(session, viewer)
    visit = visit_of(session, org, visit_id)
    try:
        validation.validate_visit(session, visit, viewer.who, viewer.role,
                                  organisation_id=org.id)
        session.commit()
    except validation.ValidationRefused as e:
        session.rollback()
        return _review_page(request, session, viewer, org, None, None, None,
                            f"Visit {visit.id}: {refusal(e)[1]}", refusal(e)[0])
    return redirect(back if back.startswith("/review") else "/review", "validated")


@router.post("/review/anomalies/{anomaly_id}/handled")
def anomaly_handled(anomaly_id: int, session: SessionDep, viewer: PlannerPostDep,
                    back: FormStr = "") -> Response:
    org = org_of(session, viewer)
    anomaly = session.get(Anomaly, anomaly_id)
    if anomaly is None or anomaly.organisation_id != org.id:
        raise Missing(f"No anomaly {anomaly_id} · Aucune anomalie {anomaly_id}")
    if not anomaly.resolved:
        anomaly.resolved = True
        audit.record(session, viewer.who, "anomaly_handled", f"anomaly:{anomaly.id}",
                     role=viewer.role, detail={"kind": anomaly.kind,
                                               "visit_id": anomaly.visit_id})
        session.commit()
    return redirect(back if back.startswith("/review") else "/review", "handled")
