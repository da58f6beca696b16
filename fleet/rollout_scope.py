"""Rollouts per agency (docs/updates.md, "An agency's own rollouts").

The fleet operator (an admin key of no organisation) uploads the bundles, rolls them out to any
readers and sees every rollout. An agency's admin key rolls an uploaded bundle out to its own
readers only and sees and steers its own rollouts only. A rollout's agency is the
`organisation_id` its `target_filter` carries: set on every rollout an agency starts, so its
filter can never reach another agency's readers.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import ApiKey, Device, Rollout
from fleet.updates import UpdateError


def narrow(session: Session, key: ApiKey, devices: list[str] | None,
           filt: dict | None) -> dict | None:
    """The filter an agency's rollout runs on (the operator's: as given). A filter naming
    another agency is refused; a listed reader of another agency is refused as not updatable,
    as an unknown one is (nothing says it exists)."""
    org = key.organisation_id
    if org is None:
        return filt
    if filt is not None and filt.get("organisation_id", org) != org:
        raise UpdateError(403, "an agency's rollout reaches its own devices only")
    if devices is None:
        return None if filt is None else {**filt, "organisation_id": org}
    mine = set(session.scalars(select(Device.ident).where(Device.ident.in_(devices),
                                                          Device.organisation_id == org)))
    if set(devices) - mine:
        raise UpdateError(422, "not updatable readers: "
                          f"{', '.join(sorted(set(devices) - mine)[:10])}")
    return filt


def mark(rollout: Rollout, key: ApiKey) -> None:
    """An agency's rollout of listed readers carries its agency too."""
    if key.organisation_id is not None:
        rollout.target_filter = {**(rollout.target_filter or {}),
                                 "organisation_id": key.organisation_id}


def agency_of(rollout: Rollout) -> int | None:
    org = (rollout.target_filter or {}).get("organisation_id")
    return org if isinstance(org, int) else None


def visible_ids(session: Session, key: ApiKey) -> list[int] | None:
    """The rollouts `key` may see; None: all of them (the operator)."""
    if key.organisation_id is None:
        return None
    return [r.id for r in session.scalars(select(Rollout)) if agency_of(r) ==
            key.organisation_id]


def check(session: Session, key: ApiKey, rollout_id: int) -> None:
    """404, as for a rollout that does not exist, unless `key` may see it."""
    r = session.get(Rollout, rollout_id)
    if r is None or (key.organisation_id is not None and agency_of(r) != key.organisation_id):
        raise UpdateError(404, f"rollout {rollout_id} not found")
