"""The config a device reads on down/config: allow-list and the coming days' planning."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import Badge, Device, Organisation, Visit


def _when(now: datetime | float) -> datetime:
    if isinstance(now, datetime):
        return now.astimezone(timezone.utc)
    return datetime.fromtimestamp(now, timezone.utc)


def device_config(session: Session, device_ident: str, now: datetime | float,
                  days: int = 2) -> dict:
    """The config of `device_ident` as of `now` (datetime or Unix seconds).

    A reader gets the active cards of the caregivers planned at its home and the visits there
    from `now` to `now + days`: `[visit_id, card uid, start, end]` (one row per active card).
    A phone gets its caregiver's visits with the client tags of those homes. `version` goes up
    by one whenever `hash` (sha256 of the canonical content) changes; the device row is updated
    in the caller's transaction. Raises LookupError for an unknown device.
    """
    device = session.scalars(select(Device).where(Device.ident == device_ident)).first()
    if device is None:
        raise LookupError(f"unknown device {device_ident!r}")
    org = session.get(Organisation, device.organisation_id)
    start = _when(now)
    q = select(Visit).where(Visit.planned_end >= start,
                            Visit.planned_start < start + timedelta(days=days),
                            Visit.status != "cancelled").order_by(Visit.planned_start, Visit.id)
    if device.kind == "reader":
        visits = session.scalars(q.where(Visit.client_id == device.client_id)).all()
        owners = {v.caregiver_id for v in visits}
        badges = session.scalars(select(Badge).where(
            Badge.kind == "caregiver_card", Badge.active,
            Badge.caregiver_id.in_(owners)).order_by(Badge.uid)).all()
        by_owner = {}
        for b in badges:
            by_owner.setdefault(b.caregiver_id, []).append(b.uid)
        key = lambda v: v.caregiver_id  # noqa: E731
    else:
        visits = session.scalars(q.where(Visit.caregiver_id == device.caregiver_id)).all()
        badges = session.scalars(select(Badge).where(
            Badge.kind == "client_tag", Badge.active,
            Badge.client_id.in_({v.client_id for v in visits})).order_by(Badge.uid)).all()
        by_owner = {}
        for b in badges:
            by_owner.setdefault(b.client_id, []).append(b.uid)
        key = lambda v: v.client_id  # noqa: E731
    rows = [[v.id, uid, int(v.planned_start.timestamp()), int(v.planned_end.timestamp())]
            for v in visits for uid in by_owner.get(key(v), [])]
    body = {"tz": org.timezone, "tolerance_min": org.tolerance_min,
            "badges": sorted({b.uid for b in badges}), "visits": rows}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()
    if digest != device.config_hash:
        device.config_hash = digest
        device.config_version += 1
    return {"version": device.config_version, "hash": digest, **body}
