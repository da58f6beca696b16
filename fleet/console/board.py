"""Today's board: planned against actual, late with the agency's tolerance, missing, anomalies.

The only script re-fetches the table body every few seconds (`/board/rows` with the same
filters), so a clock-in shows up without a reload. Data: fleet.web.board.board_rows.
"""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import absences
from fleet.console.auth import Viewer
from fleet.console.web import (PlannerDep, SessionDep, ViewerDep, organisation, page, redirect,
                               templates)
from fleet.i18n import N_
from fleet.models import Caregiver, Client
from fleet.web.board import ALERT_LABELS, STATUS_LABELS, board_rows, recent_anomalies
from fleet.types import plain_int

router = APIRouter(include_in_schema=False)
REFRESH_MS = 2000


class Filters:
    def __init__(self, day: Annotated[date | None, Query()] = None,
                 status: Annotated[str | None, Query()] = None,
                 caregiver: Annotated[str | None, Query()] = None,
                 client: Annotated[str | None, Query()] = None) -> None:
        self.day = day
        self.status = status if status in STATUS_LABELS else None
        # an empty <select> sends "": no filter
        self.caregiver = plain_int(caregiver)
        self.client = plain_int(client)


def _context(session: Session, viewer: Viewer, f: Filters) -> dict:
    org = organisation(session, viewer)
    if org is None:
        return {"org": None}
    now = datetime.now(timezone.utc)
    tz = ZoneInfo(org.timezone)
    day = f.day or now.astimezone(tz).date()
    rows = board_rows(session, org, day, now, status=f.status, caregiver_id=f.caregiver,
                      client_id=f.client)
    query = urlencode({k: v for k, v in (("day", day.isoformat()), ("status", f.status),
                                         ("caregiver", f.caregiver), ("client", f.client)) if v})
    return {
        "org": org, "day": day, "rows": rows, "labels": STATUS_LABELS,
        "alert_labels": ALERT_LABELS,
        "counts": dict(Counter(r.status for r in rows)), "filters": f,
        "anomalies": recent_anomalies(session, org), "query": query, "refresh_ms": REFRESH_MS,
        "to_replace": absences.to_replace_ids(session, [r.visit_id for r in rows]),
        "fmt": lambda t: t.astimezone(tz).strftime("%H:%M"),
    }


def _choices(session: Session, model, org_id: int) -> list:
    return list(session.execute(select(model.id, model.name).where(
        model.organisation_id == org_id, model.active).order_by(model.name)))


@router.get("/board", response_class=HTMLResponse)
def board(request: Request, session: SessionDep, viewer: ViewerDep,
          f: Annotated[Filters, Depends()]) -> Response:
    if not viewer.plans:  # technicians see devices and health only
        return redirect("/devices")
    ctx = _context(session, viewer, f)
    if ctx["org"] is None:
        return page(request, "error.html", viewer, title="telegest",
                    message=N_("No organisation yet"))
    ctx["caregivers"] = _choices(session, Caregiver, ctx["org"].id)
    ctx["clients"] = _choices(session, Client, ctx["org"].id)
    return page(request, "board.html", viewer, **ctx)


@router.get("/board/rows", response_class=HTMLResponse)
def board_rows_fragment(request: Request, session: SessionDep, viewer: PlannerDep,
                        f: Annotated[Filters, Depends()]) -> Response:
    ctx = _context(session, viewer, f)
    if ctx["org"] is None:
        return HTMLResponse("")
    return templates.TemplateResponse(request, "board_rows.html", ctx)
