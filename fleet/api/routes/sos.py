"""SOS alerts (fleet.sos): the list, newest first, and a coordinator's acknowledgement.
Managers and admins; a key of an organisation sees its own SOS only."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from fleet import sos
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, PageDep, SessionDep
from fleet.models import SosAlert

router = APIRouter(dependencies=[PLANNERS], tags=["sos"])


class SosOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    organisation_id: int
    source: str
    device_id: int
    caregiver_id: int | None
    visit_id: int | None
    client_id: int | None
    raised_at: datetime
    received_at: datetime
    lat: float | None
    lon: float | None
    accuracy_m: int | None
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    acknowledged_who: str | None
    who: str
    client: str | None
    address: str | None
    visit: str | None


def _out(session, alert: SosAlert) -> SosOut:
    text = sos.describe(session, alert)
    return SosOut.model_validate({**{c: getattr(alert, c) for c in SosOut.model_fields
                                     if hasattr(alert, c) and c not in ("visit", "client")},
                                  "who": text["who"], "client": text["client"],
                                  "address": text["address"], "visit": text["visit"]})


@router.get("/sos")
def list_sos(session: SessionDep, key: KeyDep, page: PageDep,
             state: Literal["open", "acknowledged", "all"] = "all") -> dict:
    """Newest first; `state` open (not yet acknowledged), acknowledged or all (default)."""
    stmt = data.scope(select(SosAlert).order_by(SosAlert.id.desc()), key,
                      SosAlert.organisation_id)
    if state == "open":
        stmt = stmt.where(SosAlert.acknowledged_at.is_(None))
    elif state == "acknowledged":
        stmt = stmt.where(SosAlert.acknowledged_at.is_not(None))
    return data.page(session, stmt, page.limit, page.offset, lambda a: _out(session, a))


@router.post("/sos/{sos_id}/ack", response_model=SosOut)
def acknowledge_sos(sos_id: int, session: SessionDep, key: KeyDep, request: Request):
    """A coordinator has seen it: audited, pushed to the caregiver's phones. Acknowledging
    again keeps the first acknowledgement."""
    alert = data.get_scoped(session, key, SosAlert, sos_id)
    if sos.acknowledge(session, alert, data.who(key), key.user_id, key.role):
        session.commit()
    return _out(session, alert)
