"""Firmware bundles and rollouts (fleet.updates, docs/updates.md).

Uploading a bundle is the fleet operator's (an admin key of no organisation); reading bundles
is open to every field role. Rollouts are admin actions: the operator's reach every agency, an
agency's admin key starts, sees and steers its own only (fleet.rollout_scope). The bundle is
the signed tar file itself, sent as the request body (application/octet-stream); its signature
is checked against the keys the firmware trusts before anything is stored.
"""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from fleet import rollout_scope, updates
from fleet.api import data
from fleet.api.deps import ADMIN, FIELD, FLEET_OPERATOR, KeyDep, PageDep, SessionDep
from fleet.api.schemas import BundleOut, ReasonIn, RolloutIn, RolloutOut
from fleet.models import Rollout, UpdateBundle

router = APIRouter(tags=["updates"])
MAX_BUNDLE = 4 * 1024 * 1024


def _refused(e: updates.UpdateError) -> HTTPException:
    return HTTPException(e.status, e.message)


@router.post("/bundles", status_code=201, response_model=BundleOut,
             dependencies=[FLEET_OPERATOR])
async def upload_bundle(request: Request, session: SessionDep, key: KeyDep):
    body = await request.body()
    if len(body) > MAX_BUNDLE:
        raise HTTPException(413, f"a bundle file is at most {MAX_BUNDLE} bytes")
    try:
        row = updates.store_bundle(session, body, data.who(key))
    except updates.UpdateError as e:
        session.rollback()
        raise _refused(e) from None
    session.commit()
    return row


@router.get("/bundles", dependencies=[FIELD])
def list_bundles(session: SessionDep, page: PageDep) -> dict:
    stmt = select(UpdateBundle).order_by(UpdateBundle.id.desc())
    return data.page(session, stmt, page.limit, page.offset, BundleOut.model_validate)


@router.get("/bundles/{bundle_id}", response_model=BundleOut, dependencies=[FIELD])
def get_bundle(bundle_id: int, session: SessionDep):
    row = session.get(UpdateBundle, bundle_id)
    if row is None:
        raise HTTPException(404, f"bundle {bundle_id} not found")
    return row


@router.post("/rollouts", status_code=201, response_model=RolloutOut, dependencies=[ADMIN])
def start_rollout(body: RolloutIn, session: SessionDep, key: KeyDep):
    try:
        filt = rollout_scope.narrow(session, key, body.devices, body.filter)
        r = updates.start_rollout(session, body.bundle_id, data.who(key), devices=body.devices,
                                  filt=filt, waves=body.waves,
                                  max_failures=body.max_failures,
                                  offer_ttl_s=body.offer_ttl_s, offer=body.offer)
        rollout_scope.mark(r, key)
        session.commit()
        return updates.rollout_status(session, r.id)
    except updates.UpdateError as e:
        session.rollback()
        raise _refused(e) from None


@router.get("/rollouts", dependencies=[ADMIN])
def list_rollouts(session: SessionDep, page: PageDep, key: KeyDep) -> dict:
    stmt = select(Rollout).order_by(Rollout.id.desc())
    mine = rollout_scope.visible_ids(session, key)
    if mine is not None:
        stmt = stmt.where(Rollout.id.in_(mine))
    return data.page(session, stmt, page.limit, page.offset,
                     lambda r: RolloutOut.model_validate(updates.rollout_status(session, r.id)))


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut, dependencies=[ADMIN])
def get_rollout(rollout_id: int, session: SessionDep, key: KeyDep):
    try:
        rollout_scope.check(session, key, rollout_id)
        return updates.rollout_status(session, rollout_id)
    except updates.UpdateError as e:
        raise _refused(e) from None


@router.post("/rollouts/{rollout_id}/{action}", response_model=RolloutOut,
             dependencies=[ADMIN])
def steer_rollout(rollout_id: int, action: str, session: SessionDep, key: KeyDep,
                  body: ReasonIn | None = None):
    if action not in ("pause", "resume", "cancel"):
        raise HTTPException(404, "actions: pause, resume, cancel")
    try:
        rollout_scope.check(session, key, rollout_id)
        updates.set_rollout_state(session, rollout_id, action, data.who(key),
                                  body.reason if body else None)
        session.commit()
        return updates.rollout_status(session, rollout_id)
    except updates.UpdateError as e:
        session.rollback()
        raise _refused(e) from None
