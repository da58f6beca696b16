"""The outbox page (/outbox): what the fleet sent, what waits and the dead letters with their
error; a dead letter can be sent again (audited). Managers and admins; fleet.outbox."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from fleet import audit, outbox
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.i18n import N_
from fleet.models import OUTBOX_STATES, Outbox

router = APIRouter(include_in_schema=False)

STATE_LABELS = {"pending": N_("waiting"), "sent": N_("sent"),
                "dead": N_("failed")}


@router.get("/outbox")
def outbox_page(request: Request, session: SessionDep, viewer: PlannerDep,
                state: Annotated[str | None, Query()] = None) -> Response:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    state = state if state in OUTBOX_STATES else None
    tz = ZoneInfo(org.timezone)
    return page(request, "outbox.html", viewer, org=org, state=state, labels=STATE_LABELS,
                rows=outbox.rows(session, org.id, state),
                counts=outbox.counts_by_state(session, org.id),
                fmt=lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M") if t else "")


@router.post("/outbox/{row_id}/retry")
def retry_dead_letter(row_id: int, session: SessionDep, viewer: PlannerPostDep) -> Response:
    org = organisation(session, viewer)
    row = session.get(Outbox, row_id)
    if org is None or row is None or row.organisation_id != org.id:
        raise Missing(N_("Not found"))
    if not outbox.retry(session, row, datetime.now(timezone.utc)):
        return redirect("/outbox", "not_dead")
    audit.record(session, viewer.who, "retry", f"outbox:{row_id}", role=viewer.role,
                 detail={"channel": row.channel, "recipient": row.recipient,
                         "last_error": (row.last_error or "")[:200]})
    session.commit()
    return redirect("/outbox?state=pending", "requeued")
