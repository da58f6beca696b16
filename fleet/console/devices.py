"""Devices and their health, "declare lost or stolen", provisioning, and the audit log.

Technicians see devices and health but no client record: the holder of a device (a client's
name for a reader, a caregiver's for a phone) is shown to managers and admins only. Who may
do what to a device is fleet.lifecycle.ROLES: a manager blocks, never provisions.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import literal, or_, select
from sqlalchemy.orm import Session

from fleet import audit, lifecycle
from fleet.api.routes.devices import broker_control
from fleet.console.auth import Viewer
from fleet.console.web import (Forbidden, Missing, PosterDep, SessionDep, ViewerDep,
                               organisation, page, redirect)
from fleet.i18n import N_
from fleet.lifecycle import Actor, LifecycleError
from fleet.models import AuditLog, Caregiver, Client, Device, DeviceCommand, User
from fleet.types import plain_int
from fleet.web.qr import qr_svg

router = APIRouter(include_in_schema=False)
STALE_AFTER_S = 15 * 60


def _tz(session: Session, viewer: Viewer) -> ZoneInfo:
    org = organisation(session, viewer)
    return ZoneInfo(org.timezone if org else "Europe/Paris")


def _scoped_devices(viewer: Viewer):
    q = select(Device).order_by(Device.ident)
    if viewer.organisation_id is not None:
        q = q.where(Device.organisation_id == viewer.organisation_id)
    return q


def _device(session: Session, viewer: Viewer, ident: str) -> Device:
    device = session.scalars(_scoped_devices(viewer).where(Device.ident == ident)).first()
    if device is None:
        raise Missing(f"No device {ident} · Aucun appareil {ident}")
    return device


def _holders(session: Session, viewer: Viewer, devices: list[Device]) -> dict[int, str]:
    """Device id → client or caregiver name, for those who may see client records."""
    if not viewer.plans:
        return {}
    clients = dict(session.execute(select(Client.id, Client.name).where(
        Client.id.in_({d.client_id for d in devices if d.client_id}))).all())
    caregivers = dict(session.execute(select(Caregiver.id, Caregiver.name).where(
        Caregiver.id.in_({d.caregiver_id for d in devices if d.caregiver_id}))).all())
    return {d.id: clients.get(d.client_id) or caregivers.get(d.caregiver_id) or ""
            for d in devices}


def health_of(device: Device, now: datetime) -> dict:
    h = device.health or {}
    age = (now - device.last_seen).total_seconds() if device.last_seen else None
    return {"battery": h.get("bat"), "journal": h.get("jd"), "journal_full": h.get("jfull"),
            "firmware": device.fw_version or h.get("fw"), "reader": h.get("rd"),
            "rssi": h.get("rssi"), "time": h.get("tq"),
            "stale": age is None or age > STALE_AFTER_S,
            # the planning the device says it uses (its health's `cfg`) against the latest one
            # pushed (docs/protocol.md): a reader still on an old one has not acked the new one
            "planning": h.get("cfg"), "planning_latest": device.config_version,
            "planning_current": device.config_version in (0, h.get("cfg")),
            "low_battery": h.get("bat") is not None and h.get("bat") < 20}


@router.get("/devices")
def devices(request: Request, session: SessionDep, viewer: ViewerDep,
            status: str | None = None) -> Response:
    return _devices_page(request, session, viewer, status)


def _devices_page(request: Request, session: Session, viewer: Viewer, status: str | None,
                  status_code: int = 200, **form) -> Response:
    q = _scoped_devices(viewer)
    if status:
        q = q.where(Device.status == status)
    found = list(session.scalars(q))
    now = datetime.now(timezone.utc)
    tz = _tz(session, viewer)
    return page(request, "devices.html", viewer, status_code, devices=found, status=status,
                holders=_holders(session, viewer, found),
                health={d.id: health_of(d, now) for d in found},
                owners=_owners(session, viewer), error=form.get("error"),
                values=form.get("values") or {"kind": "phone"},
                fmt=lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M") if t else "never")


def _owners(session: Session, viewer: Viewer) -> dict[str, list]:
    """The caregivers (for a phone) and clients (for a reader) the register form offers."""
    if not (viewer.plans and viewer.may("register")):
        return {}
    found = {}
    for key, model in (("caregivers", Caregiver), ("clients", Client)):
        q = select(model.id, model.name).order_by(model.name)
        if viewer.organisation_id is not None:
            q = q.where(model.organisation_id == viewer.organisation_id)
        found[key] = session.execute(q).all()
    return found


@router.post("/devices/register")
def register(request: Request, session: SessionDep, viewer: PosterDep,
             ident: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "phone",
             caregiver_id: Annotated[str, Form()] = "",
             client_id: Annotated[str, Form()] = "") -> Response:
    """Registers a phone for a caregiver or a reader for a client (fleet.lifecycle.register);
    a phone's page then offers its enrolment QR code."""
    if not viewer.plans:
        raise Forbidden(N_("Managers and admins register devices here (technicians: the API or "
                           "`telegest fleet`)"))
    _need(viewer, "register")
    owner = plain_int(caregiver_id if kind == "phone" else client_id)
    try:
        with lifecycle.settled(session):
            device = lifecycle.register(
                session, ident.strip(), kind, Actor(viewer.who, viewer.role),
                caregiver_id=owner if kind == "phone" else None,
                client_id=owner if kind == "reader" else None,
                organisation_id=viewer.organisation_id)
    except LifecycleError as e:
        return _devices_page(request, session, viewer, None, e.status,
                             error=e.message, values={"ident": ident, "kind": kind})
    session.commit()
    return redirect(f"/devices/{device.ident}", "registered")


@router.get("/devices/{ident}")
def device_page(ident: str, request: Request, session: SessionDep,
                viewer: ViewerDep) -> Response:
    device = _device(session, viewer, ident)
    tz = _tz(session, viewer)
    commands = session.scalars(select(DeviceCommand).where(
        DeviceCommand.device_id == device.id).order_by(DeviceCommand.id.desc()).limit(10)).all()
    entries = session.scalars(audit.query(f"device:{device.ident}").limit(20)).all()
    return page(request, "device.html", viewer, device=device, commands=commands,
                entries=entries, holder=_holders(session, viewer, [device]).get(device.id),
                health=health_of(device, datetime.now(timezone.utc)),
                fmt=lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M") if t else "—")


def _need(viewer: Viewer, action: str) -> None:
    if not viewer.may(action):
        allowed = " or ".join(lifecycle.ROLES[action])
        raise Forbidden(f"Role {viewer.role} may not {action} a device (needs {allowed}) · "
                        f"Le rôle {viewer.role} ne peut pas faire cela")


def _refused_page(request: Request, viewer: Viewer, device: Device,
                  e: LifecycleError) -> Response:
    return page(request, "error.html", viewer, e.status, title=f"{device.ident}: refused · "
                "refusé", message=e.message)


@router.get("/devices/{ident}/lost")
def lost_page(ident: str, request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    _need(viewer, "block")
    device = _device(session, viewer, ident)
    return page(request, "lost.html", viewer, device=device, error=None, reason="",
                enforced=broker_control(request).enforced,
                holder=_holders(session, viewer, [device]).get(device.id))


@router.post("/devices/{ident}/lost")
def declare_lost(ident: str, request: Request, session: SessionDep, viewer: PosterDep,
                 reason: Annotated[str, Form()] = "",
                 confirm: Annotated[str, Form()] = "") -> Response:
    _need(viewer, "block")
    device = _device(session, viewer, ident)
    if not reason.strip() or confirm != "yes":
        return page(request, "lost.html", viewer, 422, device=device, reason=reason,
                    enforced=broker_control(request).enforced,
                    holder=_holders(session, viewer, [device]).get(device.id),
                    error=N_("Give the reason and tick the confirmation"))
    if device.status == "blocked":  # sent twice: it is done already
        return redirect(f"/devices/{device.ident}", "already")
    broker = broker_control(request)
    try:
        with lifecycle.settled(session):
            lifecycle.block(session, device.ident, Actor(viewer.who, viewer.role), broker,
                            reason.strip(), organisation_id=viewer.organisation_id)
    except LifecycleError as e:
        return _refused_page(request, viewer, device, e)
    session.commit()
    # "refused by the broker" only where the broker enforces logins (not the anonymous one)
    return redirect(f"/devices/{device.ident}",
                    "blocked" if broker.enforced else "blocked_unenforced")


@router.post("/devices/{ident}/provision")
def provision(ident: str, request: Request, session: SessionDep, viewer: PosterDep,
              reason: Annotated[str, Form()] = "") -> Response:
    _need(viewer, "provision")
    device = _device(session, viewer, ident)
    try:
        with lifecycle.settled(session):
            creds = lifecycle.provision(session, device.ident, Actor(viewer.who, viewer.role),
                                        broker_control(request), reason=reason.strip() or None,
                                        organisation_id=viewer.organisation_id)
    except LifecycleError as e:
        return _refused_page(request, viewer, device, e)
    session.commit()
    resp = page(request, "credentials.html", viewer, device=device, creds=creds)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@router.post("/devices/{ident}/enrolment")
def enrolment(ident: str, request: Request, session: SessionDep, viewer: PosterDep) -> Response:
    """A phone's one-time enrolment token, shown as a QR code the phone scans (15 minutes)."""
    _need(viewer, "enrolment")
    device = _device(session, viewer, ident)
    try:
        with lifecycle.settled(session):
            token, expires = lifecycle.create_enrolment(
                session, device.ident, Actor(viewer.who, viewer.role),
                organisation_id=viewer.organisation_id)
    except LifecycleError as e:
        return _refused_page(request, viewer, device, e)
    session.commit()
    # from the configured public URL, never the Host header: a forged Host would send the
    # phone, and its one-time token, elsewhere
    url = request.app.state.settings.link(f"/app/enrol?token={token}")
    tz = _tz(session, viewer)
    resp = page(request, "enrolment.html", viewer, device=device, url=url, qr=qr_svg(url),
                expires=expires, fmt=lambda t: t.astimezone(tz).strftime("%H:%M"))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@router.get("/audit")
def audit_log(request: Request, session: SessionDep, viewer: ViewerDep,
              target: str | None = None, action: str | None = None,
              offset: int = 0) -> Response:
    """Newest first. Technicians see device entries only; someone of one organisation sees
    its devices' entries and what its own people did."""
    stmt = audit.query(target.strip() if target else None, action or None)
    if not viewer.plans:
        stmt = stmt.where(AuditLog.target.startswith("device:"))
    if viewer.organisation_id is not None:
        stmt = stmt.where(or_(
            AuditLog.target.in_(select(literal("device:") + Device.ident).where(
                Device.organisation_id == viewer.organisation_id)),
            AuditLog.who.in_(select(literal("user:") + User.email).where(
                User.organisation_id == viewer.organisation_id))))
    offset = max(offset, 0)
    entries = session.scalars(stmt.limit(101).offset(offset)).all()
    tz = _tz(session, viewer)
    return page(request, "audit.html", viewer, entries=entries[:100], more=len(entries) > 100,
                offset=offset, target=target or "", action=action or "",
                fmt=lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"))
