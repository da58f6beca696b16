"""The config a device reads on down/config: allow-list and the coming days' planning."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import Badge, Device, Organisation, Visit


def _when(now: datetime | float) -> datetime:
    if isinstance(now, datetime):
        return now.astimezone(timezone.utc)
    return datetime.fromtimestamp(now, timezone.utc)


def canonical(body: dict) -> str:
    """The config's canonical JSON text (sorted keys, no spaces, ASCII): what is hashed and,
    sliced, what goes on the wire."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def config_hash(body: dict) -> str:
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def config_bodies(session: Session, devices: Iterable[Device], now: datetime | float,
                  days: int = 2) -> dict[int, dict]:
    """{device id: config body (without version)} for many devices in a few queries.

    A reader gets the active cards of the caregivers planned at its home and the visits there
    from `now` to `now + days`: `[visit_id, card uid, start, end]` (one row per active card).
    A phone gets its caregiver's visits with the client tags of those homes.
    """
    devices = list(devices)
    if not devices:
        return {}
    start = _when(now)
    orgs = {o.id: o for o in session.scalars(select(Organisation).where(
        Organisation.id.in_({d.organisation_id for d in devices})))}
    q = select(Visit).where(Visit.planned_end >= start,
                            Visit.planned_start < start + timedelta(days=days),
                            Visit.status != "cancelled").order_by(Visit.planned_start, Visit.id)
    homes = {d.client_id for d in devices if d.kind == "reader" and d.client_id is not None}
    people = {d.caregiver_id for d in devices if d.kind == "phone" and d.caregiver_id is not None}
    by_client: dict[int, list[Visit]] = {}
    by_caregiver: dict[int, list[Visit]] = {}
    if homes:
        for v in session.scalars(q.where(Visit.client_id.in_(homes))):
            by_client.setdefault(v.client_id, []).append(v)
    if people:
        for v in session.scalars(q.where(Visit.caregiver_id.in_(people))):
            by_caregiver.setdefault(v.caregiver_id, []).append(v)
    cards: dict[int, list[str]] = {}  # caregiver -> active card uids
    owners = {v.caregiver_id for vs in by_client.values() for v in vs}
    if owners:
        for b in session.scalars(select(Badge).where(
                Badge.kind == "caregiver_card", Badge.active,
                Badge.caregiver_id.in_(owners)).order_by(Badge.uid)):
            cards.setdefault(b.caregiver_id, []).append(b.uid)
    tags: dict[int, list[str]] = {}  # client -> active tag uids
    places = {v.client_id for vs in by_caregiver.values() for v in vs}
    if places:
        for b in session.scalars(select(Badge).where(
                Badge.kind == "client_tag", Badge.active,
                Badge.client_id.in_(places)).order_by(Badge.uid)):
            tags.setdefault(b.client_id, []).append(b.uid)
    out = {}
    for d in devices:
        if d.kind == "reader":
            visits, owned, key = by_client.get(d.client_id, []), cards, "caregiver_id"
        else:
            visits, owned, key = by_caregiver.get(d.caregiver_id, []), tags, "client_id"
        rows = [[v.id, uid, int(v.planned_start.timestamp()), int(v.planned_end.timestamp())]
                for v in visits for uid in owned.get(getattr(v, key), [])]
        org = orgs[d.organisation_id]
        out[d.id] = {"tz": org.timezone, "tolerance_min": org.tolerance_min,
                     "badges": sorted({r[1] for r in rows}), "visits": rows}
    return out


def stamp(device: Device, body: dict) -> dict:
    """The full config of `device`: `version` goes up by one whenever `hash` (sha256 of the
    canonical body) changes; the device row is updated in the caller's transaction."""
    digest = config_hash(body)
    if digest != device.config_hash:
        device.config_hash = digest
        device.config_version += 1
    return {"version": device.config_version, "hash": digest, **body}


def device_config(session: Session, device_ident: str, now: datetime | float,
                  days: int = 2) -> dict:
    """The config of `device_ident` as of `now` (datetime or Unix seconds), see config_bodies
    and stamp. Raises LookupError for an unknown device."""
    device = session.scalars(select(Device).where(Device.ident == device_ident)).first()
    if device is None:
        raise LookupError(f"unknown device {device_ident!r}")
    return stamp(device, config_bodies(session, [device], now, days)[device.id])
