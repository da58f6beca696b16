"""Alerts: the list (filters: kind, device, visit, open or resolved) and acknowledging one."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from fleet import alerts
from fleet.api import data
from fleet.api.deps import FIELD, KeyDep, PageDep, SessionDep
from fleet.api.schemas import AlertOut
from fleet.models import ALERT_KINDS, Alert, Device

router = APIRouter(dependencies=[FIELD], tags=["alerts"])


@router.get("/alerts")
def list_alerts(session: SessionDep, key: KeyDep, page: PageDep, kind: str | None = None,
                device: str | None = None, visit: int | None = None,
                state: Literal["open", "resolved", "all"] = "open") -> dict:
    """Newest first; `device` is a device ident, `visit` a visit id (its late and missed
    alerts); `state` open (default), resolved or all."""
    if kind is not None and kind not in ALERT_KINDS:
        raise HTTPException(422, f"unknown kind {kind!r} (one of {', '.join(ALERT_KINDS)})")
    stmt = data.scope(select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()), key,
                      Alert.organisation_id)
    if kind is not None:
        stmt = stmt.where(Alert.kind == kind)
    if device is not None:
        stmt = stmt.where(Alert.device_id.in_(select(Device.id).where(Device.ident == device)))
    if visit is not None:
        stmt = stmt.where(Alert.visit_id == visit)
    if state == "open":
        stmt = stmt.where(Alert.resolved.is_(False))
    elif state == "resolved":
        stmt = stmt.where(Alert.resolved.is_(True))
    return data.page(session, stmt, page.limit, page.offset, AlertOut.model_validate)


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut)
def acknowledge_alert(alert_id: int, session: SessionDep, key: KeyDep):
    """Record who saw the alert; acknowledging again keeps the first acknowledgement."""
    alert = data.get_scoped(session, key, Alert, alert_id)
    if alerts.acknowledge(session, alert, data.who(key), key.user_id,
                          datetime.now(timezone.utc)):
        data.audit(session, key, "ack", f"alert:{alert.id}", {"kind": alert.kind})
        session.commit()
    return alert
