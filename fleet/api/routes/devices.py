"""Badges and devices (registration only; the device lifecycle comes later)."""
from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fleet.api import data
from fleet.api.deps import FIELD, KeyDep, PageDep, SessionDep
from fleet.api.schemas import BadgeIn, BadgeOut, BadgePatch, DeviceIn, DeviceOut
from fleet.models import Badge, Caregiver, Client, Device

router = APIRouter()
_CARD = re.compile(r"^[0-9A-F]{8,20}$")


@router.post("/badges", status_code=201, response_model=BadgeOut, dependencies=[FIELD],
             tags=["fleet"])
def create_badge(body: BadgeIn, session: SessionDep, key: KeyDep):
    if body.kind == "caregiver_card":
        uid = body.uid.replace(":", "").replace(" ", "").upper()
        if not _CARD.match(uid) or body.caregiver_id is None or body.client_id is not None:
            raise HTTPException(422, "a caregiver card needs caregiver_id and a uid of 8 to 20 "
                                     "hex digits (e.g. 04A1B2C3D4E5F6)")
        owner = session.get(Caregiver, body.caregiver_id)
    else:
        uid = body.uid.strip()
        if body.client_id is None or body.caregiver_id is not None:
            raise HTTPException(422, "a client tag needs client_id")
        owner = session.get(Client, body.client_id)
    if owner is None:
        raise HTTPException(422, "the badge's owner does not exist")
    org = data.org_for_write(session, key, owner.organisation_id)
    badge = Badge(organisation_id=org.id, kind=body.kind, uid=uid,
                  caregiver_id=body.caregiver_id, client_id=body.client_id, active=body.active)
    session.add(badge)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise HTTPException(409, f"badge {uid} is already registered") from None
    data.audit(session, key, "create", f"badge:{badge.id}", {"kind": body.kind, "uid": uid})
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


@router.patch("/badges/{badge_id}", response_model=BadgeOut, dependencies=[FIELD],
              tags=["fleet"])
def update_badge(badge_id: int, body: BadgePatch, session: SessionDep, key: KeyDep):
    badge = data.get_scoped(session, key, Badge, badge_id)
    badge.active = body.active
    data.audit(session, key, "activate" if body.active else "deactivate", f"badge:{badge.id}")
    session.commit()
    return badge


@router.post("/devices", status_code=201, response_model=DeviceOut, dependencies=[FIELD],
             tags=["fleet"])
def register_device(body: DeviceIn, session: SessionDep, key: KeyDep):
    if body.kind == "reader":
        if body.client_id is None or body.caregiver_id is not None:
            raise HTTPException(422, "a reader is installed at a client: give client_id")
        owner = session.get(Client, body.client_id)
    else:
        if body.caregiver_id is None or body.client_id is not None:
            raise HTTPException(422, "a phone belongs to a caregiver: give caregiver_id")
        owner = session.get(Caregiver, body.caregiver_id)
    if owner is None:
        raise HTTPException(422, "the device's client or caregiver does not exist")
    org = data.org_for_write(session, key, owner.organisation_id)
    device = Device(ident=body.ident, kind=body.kind, organisation_id=org.id,
                    client_id=body.client_id, caregiver_id=body.caregiver_id)
    session.add(device)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise HTTPException(409, f"device {body.ident!r} is already registered") from None
    data.audit(session, key, "register", f"device:{device.ident}", body.model_dump())
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
