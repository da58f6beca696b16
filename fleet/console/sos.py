"""SOS in the console (fleet.sos): the banner's feed, the list and a coordinator's
acknowledgement. Managers and admins.

Every page of a manager or admin carries an empty banner and /static/sos.js (base.html): the
script asks `/sos/live` every second (a few hundred bytes of JSON; the poll keeps no session
alive) and shows each SOS not yet acknowledged, with a sound, until someone acknowledges it
with the banner's button (a CSRF-checked POST, audited). A second is the poll's whole delay, so
an SOS shows within about a second of its commit; no extra process or connection to hold, which
server-sent events would need per open page.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from fleet import sos
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.i18n import N_
from fleet.models import SosAlert

router = APIRouter(include_in_schema=False)
LIVE = "/sos/live"
LIST_LIMIT = 200


@router.get(LIVE)
def live(session: SessionDep, viewer: PlannerDep) -> JSONResponse:
    org = organisation(session, viewer)
    alerts = sos.open_alerts(session, org.id) if org else []
    return JSONResponse({"open": [_public(sos.describe(session, a)) for a in alerts]},
                        headers={"Cache-Control": "no-store"})


def _public(text: dict) -> dict:
    return {k: text[k] for k in ("id", "source", "who", "device", "at", "client", "address",
                                 "visit", "position", "map")}


@router.get("/sos")
def sos_page(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    rows = session.scalars(select(SosAlert).where(SosAlert.organisation_id == org.id)
                           .order_by(SosAlert.id.desc()).limit(LIST_LIMIT))
    return page(request, "sos.html", viewer, alerts=[sos.describe(session, a) for a in rows])


@router.post("/sos/{sos_id}/ack")
def acknowledge(sos_id: int, session: SessionDep, viewer: PlannerPostDep,
                back: Annotated[str, Form()] = "/sos") -> Response:
    org = organisation(session, viewer)
    alert = session.get(SosAlert, sos_id)
    if org is None or alert is None or alert.organisation_id != org.id:
        raise Missing(N_("Not found"))
    done = sos.acknowledge(session, alert, viewer.who, viewer.user_id, viewer.role)
    session.commit()
    # back to the page the banner was on: a path of this console only
    target = back if back.startswith("/") and not back.startswith("//") else "/sos"
    return redirect(target, "sos_acknowledged" if done else "sos_already")
