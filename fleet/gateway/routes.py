"""The gateway's endpoints (docs/protocol.md, "Device gateway (HTTPS)").

Routes → the `Phone` dependency (authentication, first-contact activation, last_seen) →
data functions of fleet.ingest, fleet.matching and fleet.gateway.planning. Every answer
carries `Cache-Control: no-store`: nothing a phone gets from here belongs in a shared cache.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fleet import audit, lifecycle, throttle
from fleet.api.deps import SessionDep
from fleet.gateway.auth import DeviceRefused, authenticate
from fleet.gateway.planning import phone_planning
from fleet.ingest import handle_clock, handle_health
from fleet.matching import match_pending
from fleet.models import (AlertSettings, Device, DeviceCommand, ServiceTask, Visit,
                          VisitRecord, VisitTaskCheck)
from fleet.types import utcnow

log = logging.getLogger("telegest.gateway")
router = APIRouter(tags=["device gateway"])
NO_STORE = {"Cache-Control": "no-store"}


def phone(request: Request, session: SessionDep) -> Device:
    """The authenticated phone. A blocked one gets its queued wipe delivered: the 403 with
    Clear-Site-Data is the wipe, so the command is marked sent."""
    try:
        device = authenticate(session, request.headers.get("authorization"),
                              request.client.host if request.client else "?")
    except DeviceRefused as e:
        if e.device_status == "blocked" and e.device_id is not None:
            _deliver_wipe(session, e.device_id)
        for key in e.lockouts:  # a lockout starts: audited once, it ends by itself
            audit.record(session, "fleet", "lockout", key, why="failed device "
                         "authentications past the limit (docs/security.md)")
            session.commit()
        raise
    if device.status == "provisioned":
        lifecycle.activate_contacted(session, {device.ident})
    device.last_seen = utcnow()
    session.commit()
    return device


Phone = Annotated[Device, Depends(phone)]


def _deliver_wipe(session: Session, device_id: int) -> None:
    session.execute(update(DeviceCommand).where(
        DeviceCommand.device_id == device_id, DeviceCommand.kind == "wipe",
        DeviceCommand.state == "pending")
        .values(state="sent", sent_at=utcnow(),
                result="delivered by the HTTPS gateway: 403 with Clear-Site-Data"))
    session.commit()


def _matching(request: Request) -> None:
    """Match what was just stored (the worker does the same for MQTT devices); a failure
    leaves the events pending for the next pass, here or in a worker."""
    try:
        with request.app.state.sessions() as session:
            match_pending(session)
            session.commit()
    except Exception:
        log.exception("matching after a gateway batch failed; the events stay pending")


@router.get("/device")
def whoami(device: Phone) -> JSONResponse:
    """Who the fleet thinks the phone is, where its sequence stands and the fleet's clock: a
    freshly enrolled phone numbers its events from `acked_seq + 1`."""
    return JSONResponse({"ident": device.ident, "status": device.status,
                         "acked_seq": device.acked_seq, "now": int(time.time())},
                        headers=NO_STORE)


@router.post("/clock")
async def clock(request: Request, device: Phone, session: SessionDep,
                background: BackgroundTasks) -> JSONResponse:
    """An `up/clock` batch; answers the `down/ack` after the commit. A refused message
    (oversized, malformed_json, bad_batch) is acked by nothing: 413 or 422."""
    raw = await request.body()
    result = handle_clock(session, device.ident, raw, time.time())
    session.commit()
    if result.refused:
        status = 413 if result.refused == "oversized" else 422
        return JSONResponse({"error": result.refused, "detail": "message refused, nothing "
                             "stored: see docs/protocol.md"}, status, headers=NO_STORE)
    if result.stored:
        background.add_task(_matching, request)
    ack = result.ack
    return JSONResponse({"ack": ack.ack, "rejected": ack.rejected}, headers=NO_STORE)


@router.post("/health")
async def health(request: Request, device: Phone, session: SessionDep) -> JSONResponse:
    ok = handle_health(session, device.ident, await request.body(), time.time())
    session.commit()
    if not ok:
        return JSONResponse({"error": "bad_health", "detail": "malformed health report"}, 422,
                            headers=NO_STORE)
    return JSONResponse({"ok": True}, headers=NO_STORE)


@router.get("/config")
def config(request: Request, device: Phone, session: SessionDep) -> Response:
    """The phone's planning; `ETag` is its version and hash, so a poll with
    `If-None-Match` costs a 304 when nothing changed."""
    doc = phone_planning(session, device, time.time())
    session.commit()
    etag = f'"{doc["version"]}-{doc["hash"][:40]}"'
    headers = {**NO_STORE, "ETag": etag}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return JSONResponse(doc, headers=headers)


@router.get("/cmd")
def commands(device: Phone, session: SessionDep) -> JSONResponse:
    """Pending commands (`down/cmd` payloads), marked sent; expired ones are closed."""
    now = utcnow()
    rows = list(session.scalars(select(DeviceCommand).where(
        DeviceCommand.device_id == device.id, DeviceCommand.state == "pending")
        .order_by(DeviceCommand.id)))
    out = []
    for cmd in rows:
        if cmd.expires_at <= now:
            cmd.state, cmd.done_at = "expired", now
            continue
        cmd.state, cmd.sent_at = "sent", now
        out.append(cmd.payload or {"id": cmd.id, "cmd": cmd.kind,
                                   "exp": int(cmd.expires_at.timestamp())})
    session.commit()
    return JSONResponse({"commands": out}, headers=NO_STORE)


class CommandResult(BaseModel):
    ok: bool
    result: str = Field("", max_length=500)


@router.post("/cmd/{command_id}")
def command_done(command_id: int, body: CommandResult, device: Phone,
                 session: SessionDep) -> JSONResponse:
    cmd = session.get(DeviceCommand, command_id)
    if cmd is None or cmd.device_id != device.id:
        return JSONResponse({"error": "not_found", "detail": "no such command for this "
                             "device"}, 404, headers=NO_STORE)
    if cmd.state in ("pending", "sent"):
        cmd.state, cmd.done_at = ("done" if body.ok else "failed"), utcnow()
        cmd.result = body.result or None
        session.commit()
    return JSONResponse({"id": cmd.id, "state": cmd.state}, headers=NO_STORE)


class VisitReport(BaseModel):
    """The caregiver's notes on a visit, whole each time (the last one sent wins)."""

    visit: int
    km: int | None = Field(None, ge=0, le=2000)
    expenses_cents: int | None = Field(None, ge=0, le=1_000_000)
    comment: str = Field("", max_length=2000)
    report: str = Field("", max_length=4000)
    tasks: dict[int, bool] = Field(default_factory=dict)


def _report_refused(session: Session, visit: Visit, record: VisitRecord | None,
                    body: "VisitReport") -> tuple[int, str, str] | None:
    """A phone reports on a visit under way or ended within the agency's window, within its
    bounds, and never on a validated one (docs/protocol.md, "Device gateway")."""
    rules = session.get(AlertSettings, visit.organisation_id)
    window_h = rules.report_window_h if rules else 24
    km_max = rules.report_km_max if rules else 300
    cents_max = rules.report_expenses_max_cents if rules else 20000
    if record is not None and record.validated_at is not None:
        return 409, "validated", "this visit is validated: ask the office to change it"
    ended = (record.actual_end if record and record.actual_end else visit.planned_end)
    now = utcnow()
    if ended < now - timedelta(hours=window_h):
        return 409, "too_late", (f"this visit ended more than {window_h} h ago: ask the office "
                                 "to change it")
    if visit.planned_start > now + timedelta(hours=window_h):
        return 409, "too_early", f"this visit starts in more than {window_h} h"
    if body.km is not None and body.km > km_max:
        return 422, "out_of_bounds", f"km over the agency's limit of {km_max}"
    if body.expenses_cents is not None and body.expenses_cents > cents_max:
        return 422, "out_of_bounds", (f"expenses over the agency's limit of "
                                      f"{cents_max / 100:.2f} EUR")
    return None


@router.post("/visit-report")
def visit_report(body: VisitReport, device: Phone, session: SessionDep) -> JSONResponse:
    """km, expenses and comments during a visit, the end-of-visit report, ticked tasks:
    written to the visit's record (created if matching has not made it yet)."""
    visit = session.get(Visit, body.visit)
    if visit is None or visit.caregiver_id != device.caregiver_id:
        return JSONResponse({"error": "not_found", "detail": f"visit {body.visit} is not on "
                             "this phone's planning"}, 404, headers=NO_STORE)
    record = session.scalars(select(VisitRecord).where(
        VisitRecord.visit_id == visit.id)).first()
    refused = _report_refused(session, visit, record, body)
    if refused:
        status, error, detail = refused
        return JSONResponse({"error": error, "detail": detail}, status, headers=NO_STORE)
    before = {"km": record.km, "expenses_cents": record.expenses_cents,
              "report_chars": len(record.report or "")} if record else None
    if record is None:
        record = VisitRecord(visit_id=visit.id, status="in_progress")
        session.add(record)
    record.km, record.expenses_cents = body.km, body.expenses_cents
    parts = [body.report.strip()] + ([f"Comments: {body.comment.strip()}"]
                                     if body.comment.strip() else [])
    record.report = "\n\n".join(p for p in parts if p) or None
    known = {t.id for t in session.scalars(select(ServiceTask).where(
        ServiceTask.service_id == visit.service_id))} if visit.service_id else set()
    checks = {c.service_task_id: c for c in session.scalars(select(VisitTaskCheck).where(
        VisitTaskCheck.visit_id == visit.id))}
    for task_id, done in body.tasks.items():
        if task_id not in known:
            continue
        check = checks.get(task_id) or VisitTaskCheck(visit_id=visit.id,
                                                      service_task_id=task_id)
        if check.done != done or check.id is None:
            check.done, check.at = done, utcnow()
        session.add(check)
    # every change is kept in the visit's history (the report's text stays in the record)
    audit.record(session, f"device:{device.ident}", "visit_report", f"visit:{visit.id}",
                 role="device", detail={"before": before, "after": {
                     "km": body.km, "expenses_cents": body.expenses_cents,
                     "report_chars": len(record.report or ""),
                     "tasks": {str(k): v for k, v in body.tasks.items()}}})
    session.commit()
    return JSONResponse({"visit": visit.id, "saved": True}, headers=NO_STORE)


def install_errors(app: FastAPI) -> None:
    @app.exception_handler(DeviceRefused)
    async def _refused(_request: Request, exc: DeviceRefused) -> JSONResponse:
        headers = dict(NO_STORE)
        if exc.wipe:
            headers["Clear-Site-Data"] = '"storage"'
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'TelegestDevice realm="gateway"'
        if exc.retry_after is not None:
            headers["Retry-After"] = throttle.retry_after(exc.retry_after)
        body = {"error": exc.error, "detail": exc.detail}
        if exc.wipe:
            body["wipe"] = True
        return JSONResponse(body, exc.status, headers=headers)
