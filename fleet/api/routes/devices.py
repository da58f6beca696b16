"""Badges and devices: registration, and the device lifecycle (fleet.lifecycle).

`router` needs an API key like every /api/v1 route; `public_router` holds the one route a
phone calls without a key (`POST /enrol`, authenticated by its one-time token).
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Iterator

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from sqlalchemy import literal, select

from fleet import audit, badges, lifecycle, maintenance, throttle
from fleet.api import data
from fleet.api.deps import FIELD, PLANNERS, KeyDep, PageDep, SessionDep
from fleet.api.schemas import (AbandonIn, AuditOut, BadgeIn, BadgeOut, BadgePatch, BadgeReplaceIn,
                               BlockIn, ConfirmIn, CredentialsOut, DeviceCommandOut, DeviceIn,
                               DeviceOut, EnrolIn, EnrolmentOut, MaintenanceCodeOut, ReasonIn,
                               StagedOut)
from fleet.brokerauth import BrokerControl, control_from_env
from fleet.lifecycle import Actor, LifecycleError
from fleet.models import ApiKey, AuditLog, Badge, Device, DeviceCommand

router = APIRouter()
public_router = APIRouter()


@contextmanager
def _badge_errors() -> Iterator[None]:
    try:
        yield
    except badges.BadgeError as e:
        raise HTTPException(e.status, e.message) from None


@router.post("/badges", status_code=201, response_model=BadgeOut, dependencies=[FIELD],
             tags=["fleet"])
def create_badge(body: BadgeIn, session: SessionDep, key: KeyDep):
    """Register a caregiver's card (its UID) or issue a client's tag: without `uid`, the fleet
    mints a signed token to write on the NTAG and print as a QR code."""
    with _badge_errors():
        owner = badges.owner_of(session, body.kind, body.caregiver_id, body.client_id)
        data.org_for_write(session, key, owner.organisation_id)
        badge = badges.issue(session, data.who(key), owner, body.uid, active=body.active,
                             role=key.role)
    session.commit()
    return badge


@router.get("/badges", tags=["fleet"])
def list_badges(session: SessionDep, key: KeyDep, page: PageDep, kind: str | None = None,
                caregiver_id: int | None = None, client_id: int | None = None,
                uid: str | None = None, active: bool | None = None) -> dict:
    stmt = data.scope(select(Badge).order_by(Badge.id), key, Badge.organisation_id)
    for col, val in ((Badge.kind, kind), (Badge.caregiver_id, caregiver_id),
                     (Badge.client_id, client_id), (Badge.uid, uid), (Badge.active, active)):
        if val is not None:
            stmt = stmt.where(col == val)
    return data.page(session, stmt, page.limit, page.offset, BadgeOut.model_validate)


@router.get("/badges/{badge_id}", response_model=BadgeOut, tags=["fleet"])
def get_badge(badge_id: int, session: SessionDep, key: KeyDep):
    return data.get_scoped(session, key, Badge, badge_id)


@router.patch("/badges/{badge_id}", response_model=BadgeOut, dependencies=[FIELD],
              tags=["fleet"])
def update_badge(badge_id: int, body: BadgePatch, session: SessionDep, key: KeyDep):
    """Revoke (`active: false`, with a `reason`) or restore a badge."""
    badge = data.get_scoped(session, key, Badge, badge_id)
    with _badge_errors():
        if body.active:
            badges.restore(session, data.who(key), badge, role=key.role)
        else:
            badges.revoke(session, data.who(key), badge, body.reason or "", role=key.role)
    session.commit()
    return badge


@router.post("/badges/{badge_id}/replace", status_code=201, response_model=BadgeOut,
             dependencies=[FIELD], tags=["fleet"])
def replace_badge(badge_id: int, body: BadgeReplaceIn, session: SessionDep, key: KeyDep):
    """Revoke a badge and issue its successor in one step: a new card's `uid`, or for a client
    tag a new signed token (events that still carry the old one are flagged `revoked_badge`)."""
    badge = data.get_scoped(session, key, Badge, badge_id)
    with _badge_errors():
        new = badges.replace(session, data.who(key), badge, body.reason, body.uid,
                             role=key.role)
    session.commit()
    return new


@router.post("/devices", status_code=201, response_model=DeviceOut, dependencies=[FIELD],
             tags=["fleet"])
def register_device(body: DeviceIn, session: SessionDep, key: KeyDep):
    """A reader at a client's home (`client_id`) or a caregiver's phone (`caregiver_id`),
    `registered` until it is provisioned or enrols (fleet.lifecycle.register)."""
    with _lifecycle(session):
        device = lifecycle.register(session, body.ident, body.kind, _actor(key),
                                    client_id=body.client_id, caregiver_id=body.caregiver_id,
                                    organisation_id=key.organisation_id)
    session.commit()
    return device


@router.get("/devices", tags=["fleet"])
def list_devices(session: SessionDep, key: KeyDep, page: PageDep, kind: str | None = None,
                 client_id: int | None = None, status: str | None = None) -> dict:
    stmt = data.scope(select(Device).order_by(Device.ident), key, Device.organisation_id)
    for col, val in ((Device.kind, kind), (Device.client_id, client_id),
                     (Device.status, status)):
        if val is not None:
            stmt = stmt.where(col == val)
    return data.page(session, stmt, page.limit, page.offset, DeviceOut.model_validate)


@router.get("/devices/{ident}", response_model=DeviceOut, tags=["fleet"])
def get_device(ident: str, session: SessionDep, key: KeyDep):
    device = session.scalars(data.scope(select(Device).where(Device.ident == ident), key,
                                        Device.organisation_id)).first()
    if device is None:
        raise HTTPException(404, f"device {ident!r} not found")
    return device


# -- lifecycle ---------------------------------------------------------------------------------
def broker_control(request: Request) -> BrokerControl:
    """The app's dynsec admin connection (`app.state.broker_control`), made from
    TELEGEST_DYNSEC_USERNAME / _PASSWORD on first use; an anonymous broker gets none."""
    state = request.app.state
    if getattr(state, "broker_control", None) is None:
        state.broker_control = control_from_env()
    return state.broker_control


BrokerDep = Annotated[BrokerControl, Depends(broker_control)]


def _actor(key: ApiKey) -> Actor:
    return Actor(data.who(key), key.role)


@contextmanager
def _lifecycle(session) -> Iterator[None]:
    """Lifecycle refusals (and broker failures: 503, nothing changed) become their HTTP status."""
    try:
        with lifecycle.settled(session):
            yield
    except LifecycleError as e:
        raise HTTPException(e.status, e.message) from None


@router.post("/devices/{ident}/provision", response_model=CredentialsOut, tags=["lifecycle"])
def provision_device(ident: str, session: SessionDep, key: KeyDep, broker: BrokerDep,
                     body: Annotated[ReasonIn | None, Body()] = None):
    """New broker credentials for the device, shown once (admin or technician)."""
    with _lifecycle(session):
        creds = lifecycle.provision(session, ident, _actor(key), broker,
                                    reason=body.reason if body else None,
                                    organisation_id=key.organisation_id)
    session.commit()
    return creds


@router.post("/devices/{ident}/provision/stage", response_model=StagedOut,
             tags=["lifecycle"])
def stage_provision(ident: str, session: SessionDep, key: KeyDep, broker: BrokerDep,
                    body: Annotated[ReasonIn | None, Body()] = None):
    """A reader's new credentials, shown once, staged for 15 minutes: the broker holds them
    disabled and the current ones keep working until `/provision/confirm` (admin or
    technician)."""
    with _lifecycle(session):
        staged = lifecycle.stage(session, ident, _actor(key), broker,
                                 reason=body.reason if body else None,
                                 organisation_id=key.organisation_id)
    session.commit()
    c = staged.credentials
    return StagedOut(ident=c.ident, username=c.username, password=c.password,
                     client_id=c.client_id, status=c.status, broker_enforced=c.broker_enforced,
                     staging_id=staged.staging_id, expires_at=staged.expires_at,
                     maint_key=staged.maint_key)


@router.post("/devices/{ident}/maintenance-code", response_model=MaintenanceCodeOut,
             tags=["lifecycle"])
def maintenance_code(ident: str, session: SessionDep, key: KeyDep,
                     body: Annotated[ReasonIn | None, Body()] = None):
    """A one-time code, valid 30 minutes, that opens the reader's serial console (admin or
    technician); audited (`maintenance_code`). 409: the reader has no maintenance key yet."""
    with _lifecycle(session):
        mc = maintenance.issue(session, ident, _actor(key), reason=body.reason if body else None,
                               organisation_id=key.organisation_id)
    session.commit()
    return MaintenanceCodeOut(ident=mc.ident, code=mc.code, expires_at=mc.expires_at)


@router.post("/devices/{ident}/provision/confirm", response_model=DeviceOut,
             tags=["lifecycle"])
def confirm_provision(ident: str, body: ConfirmIn, session: SessionDep, key: KeyDep,
                      broker: BrokerDep):
    """The box stored the staged credentials (`digest`: its `broker_digest`): they become
    the active ones and the old ones stop working. 409: no such stage; 410: expired; 422: the
    digest does not match. A refusal changes nothing and is audited."""
    with _lifecycle(session):
        device = lifecycle.confirm(session, ident, _actor(key), broker, body.staging_id,
                                   body.digest, organisation_id=key.organisation_id)
    session.commit()
    return device


@router.post("/devices/{ident}/provision/abandon", response_model=DeviceOut,
             tags=["lifecycle"])
def abandon_provision(ident: str, body: AbandonIn, session: SessionDep, key: KeyDep,
                      broker: BrokerDep):
    """Drop staged credentials (the tool gave up); the current ones never stopped working."""
    with _lifecycle(session):
        device = lifecycle.abandon(session, ident, _actor(key), broker, body.staging_id,
                                   body.reason, organisation_id=key.organisation_id)
    session.commit()
    return device


@router.post("/devices/{ident}/block", response_model=DeviceCommandOut, tags=["lifecycle"])
def block_device(ident: str, body: BlockIn, session: SessionDep, key: KeyDep,
                 broker: BrokerDep):
    """Lost or stolen (manager or admin, reason required): the broker refuses the device at
    once; answers the queued wipe command."""
    with _lifecycle(session):
        cmd = lifecycle.block(session, ident, _actor(key), broker, body.reason,
                              organisation_id=key.organisation_id)
    session.commit()
    return cmd


@router.post("/devices/{ident}/unblock", response_model=CredentialsOut, tags=["lifecycle"])
def unblock_device(ident: str, session: SessionDep, key: KeyDep, broker: BrokerDep,
                   body: Annotated[ReasonIn | None, Body()] = None):
    """Get a blocked device back: it is provisioned again, with new credentials."""
    with _lifecycle(session):
        creds = lifecycle.unblock(session, ident, _actor(key), broker,
                                  reason=body.reason if body else None,
                                  organisation_id=key.organisation_id)
    session.commit()
    return creds


@router.post("/devices/{ident}/wiped", response_model=DeviceOut, tags=["lifecycle"])
def device_wiped(ident: str, body: BlockIn, session: SessionDep, key: KeyDep):
    """A technician confirms a recovered blocked device was erased."""
    with _lifecycle(session):
        device = lifecycle.record_wiped(session, ident, _actor(key), body.reason,
                                        organisation_id=key.organisation_id)
    session.commit()
    return device


@router.post("/devices/{ident}/retire", response_model=DeviceOut, tags=["lifecycle"])
def retire_device(ident: str, body: BlockIn, session: SessionDep, key: KeyDep,
                  broker: BrokerDep):
    with _lifecycle(session):
        device = lifecycle.retire(session, ident, _actor(key), broker, body.reason,
                                  organisation_id=key.organisation_id)
    session.commit()
    return device


@router.post("/devices/{ident}/enrolment", status_code=201, response_model=EnrolmentOut,
             tags=["lifecycle"])
def create_enrolment(ident: str, session: SessionDep, key: KeyDep):
    """A one-time token (15 minutes) a phone exchanges for its credentials at POST /enrol."""
    with _lifecycle(session):
        token, expires = lifecycle.create_enrolment(session, ident, _actor(key),
                                                    organisation_id=key.organisation_id)
    session.commit()
    return EnrolmentOut(ident=ident, token=token, expires_at=expires)


@router.get("/devices/{ident}/commands", tags=["lifecycle"])
def list_commands(ident: str, session: SessionDep, key: KeyDep, page: PageDep) -> dict:
    with _lifecycle(session):
        device = lifecycle.get_device(session, ident, key.organisation_id)
    stmt = select(DeviceCommand).where(DeviceCommand.device_id == device.id).order_by(
        DeviceCommand.id.desc())
    return data.page(session, stmt, page.limit, page.offset, DeviceCommandOut.model_validate)


@router.get("/audit", dependencies=[PLANNERS], tags=["lifecycle"])
def list_audit(session: SessionDep, key: KeyDep, page: PageDep, target: str | None = None,
               action: str | None = None, since: datetime | None = None) -> dict:
    """Newest first. `target` exact (`device:r-0042`) or a prefix with `*`; `since` ISO 8601.
    A key of one organisation sees the entries about that organisation's devices."""
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since must carry a UTC offset (2026-11-23T07:00:00Z)")
    stmt = audit.query(target, action, since)
    if key.organisation_id is not None:
        stmt = stmt.where(AuditLog.target.in_(
            select(literal("device:") + Device.ident)
            .where(Device.organisation_id == key.organisation_id)))
    return data.page(session, stmt, page.limit, page.offset, AuditOut.model_validate)


@public_router.post("/enrol", response_model=CredentialsOut, tags=["lifecycle"])
def enrol(body: EnrolIn, request: Request, session: SessionDep, broker: BrokerDep):
    """A phone exchanges its one-time token for its credentials (no API key). 401: unknown
    token; 410: used or expired; 429 after too many refusals from one address (it ends by
    itself); every refusal is in the audit log."""
    address = f"enrol:{request.client.host if request.client else '?'}"
    wait = throttle.ADDRESSES.locked_for(address)
    if wait:
        raise HTTPException(429, "too many refused enrolments from this address: retry later",
                            headers={"Retry-After": throttle.retry_after(wait)})
    try:
        with _lifecycle(session):
            creds = lifecycle.enrol(session, body.token, broker)
    except HTTPException as e:
        if e.status_code in (401, 410) and throttle.ADDRESSES.failure(address):
            audit.record(session, "fleet", "lockout", address, why="refused enrolments past "
                         "the limit (docs/security.md)")
            session.commit()
        raise
    session.commit()
    return creds
