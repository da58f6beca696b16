"""What the devices sent and what the fleet made of it: clock events, visit records,
anomalies, rejections, ingest counters. Read-only, but for marking an anomaly handled."""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter
from sqlalchemy import or_, select

from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, PageDep, SessionDep
from fleet.api.schemas import (AnomalyOut, AnomalyPatch, ClockEventOut, RejectionOut,
                               VisitRecordOut)
from fleet.ingest import ingest_stats
from fleet.models import Anomaly, Badge, ClockEvent, Device, Rejection, Visit, VisitRecord

router = APIRouter()


@router.get("/clock-events", tags=["events"])
def list_clock_events(session: SessionDep, key: KeyDep, page: PageDep, day: date | None = None,
                      client_id: int | None = None, caregiver_id: int | None = None,
                      device: str | None = None, match_status: str | None = None) -> dict:
    stmt = data.scope(select(ClockEvent).join(Device, Device.id == ClockEvent.device_id)
                      .order_by(ClockEvent.device_ts, ClockEvent.id), key,
                      Device.organisation_id)
    if day is not None:
        stmt = stmt.where(data.day_clause(session, key, day, ClockEvent.device_ts,
                                          Device.organisation_id))
    if client_id is not None:
        stmt = stmt.where(or_(Device.client_id == client_id, ClockEvent.visit_id.in_(
            select(Visit.id).where(Visit.client_id == client_id))))
    if caregiver_id is not None:
        stmt = stmt.where(or_(
            ClockEvent.badge_uid.in_(select(Badge.uid).where(
                Badge.caregiver_id == caregiver_id, Badge.kind == "caregiver_card")),
            Device.caregiver_id == caregiver_id,
            ClockEvent.visit_id.in_(select(Visit.id).where(Visit.caregiver_id == caregiver_id))))
    if device is not None:
        stmt = stmt.where(Device.ident == device)
    if match_status is not None:
        stmt = stmt.where(ClockEvent.match_status == match_status)
    return data.page(session, stmt, page.limit, page.offset, ClockEventOut.model_validate)


@router.get("/visit-records", tags=["events"])
def list_visit_records(session: SessionDep, key: KeyDep, page: PageDep,
                       day: date | None = None, client_id: int | None = None,
                       caregiver_id: int | None = None, status: str | None = None) -> dict:
    stmt = data.scope(select(VisitRecord).join(Visit, Visit.id == VisitRecord.visit_id)
                      .order_by(Visit.planned_start, VisitRecord.id), key,
                      Visit.organisation_id)
    if day is not None:
        stmt = stmt.where(data.day_clause(session, key, day, Visit.planned_start,
                                          Visit.organisation_id))
    for col, val in ((Visit.client_id, client_id), (Visit.caregiver_id, caregiver_id),
                     (VisitRecord.status, status)):
        if val is not None:
            stmt = stmt.where(col == val)
    return data.page(session, stmt, page.limit, page.offset, VisitRecordOut.model_validate)


@router.get("/anomalies", tags=["events"])
def list_anomalies(session: SessionDep, key: KeyDep, page: PageDep, kind: str | None = None,
                   device: str | None = None, resolved: bool | None = None,
                   day: date | None = None) -> dict:
    """What matching flagged (unknown_badge, no_planned_visit, out_before_in, double_tap,
    clock_off, revoked_badge, forged_tag), newest first."""
    stmt = data.scope(select(Anomaly).order_by(Anomaly.id.desc()), key, Anomaly.organisation_id)
    if day is not None:
        stmt = stmt.where(data.day_clause(session, key, day, Anomaly.created_at,
                                          Anomaly.organisation_id))
    if device is not None:
        stmt = stmt.where(Anomaly.device_id.in_(select(Device.id).where(Device.ident == device)))
    for col, val in ((Anomaly.kind, kind), (Anomaly.resolved, resolved)):
        if val is not None:
            stmt = stmt.where(col == val)
    return data.page(session, stmt, page.limit, page.offset, AnomalyOut.model_validate)


@router.patch("/anomalies/{anomaly_id}", response_model=AnomalyOut, dependencies=[PLANNERS],
              tags=["events"])
def update_anomaly(anomaly_id: int, body: AnomalyPatch, session: SessionDep, key: KeyDep):
    """Mark an anomaly handled (or not): it leaves the board's list."""
    anomaly = data.get_scoped(session, key, Anomaly, anomaly_id)
    anomaly.resolved = body.resolved
    data.audit(session, key, "resolve" if body.resolved else "reopen", f"anomaly:{anomaly.id}")
    session.commit()
    return anomaly


@router.get("/rejections", tags=["events"])
def list_rejections(session: SessionDep, key: KeyDep, page: PageDep, device: str | None = None,
                    reason: str | None = None) -> dict:
    stmt = select(Rejection).order_by(Rejection.id.desc())
    if key.organisation_id is not None:  # unknown devices belong to no organisation
        stmt = stmt.where(Rejection.device_id.in_(select(Device.id).where(
            Device.organisation_id == key.organisation_id)))
    if device is not None:
        stmt = stmt.where(Rejection.device_ident == device)
    if reason is not None:
        stmt = stmt.where(Rejection.reason == reason)
    return data.page(session, stmt, page.limit, page.offset, RejectionOut.model_validate)


@router.get("/ingest/stats", tags=["events"])
def get_ingest_stats(session: SessionDep, key: KeyDep) -> dict:
    """Counters of every ingest outcome (all workers) and stored rejections per reason; a key
    of one organisation gets its devices' stored events and rejections only."""
    return ingest_stats(session, key.organisation_id)
