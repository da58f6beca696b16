"""The phone's planning as the gateway serves it: its caregiver's visits of today and the
coming week, with what the screen needs (client names and addresses, services and tasks,
and to recognise a home's tag offline: digests of its static tags, never the tokens
(fleet.tagdigest), and whether it has a SUN tag, known by the `c=` of its URL). Richer than
the reader's `down/config` body (fleet.planning), which a phone does not need; the clients it
visits today also carry their record (fleet.client_record: codes, notes, family contacts, the
agency's fields for caregivers), the others do not; `version` is
still the device's config version, kept in step with the planning push by stamping the very
body the pusher would send."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import client_record, contacts, tagdigest
from fleet.models import Badge, Caregiver, Client, Device, Organisation, Service, Visit
from fleet.planning import config_bodies, config_hash, stamp
from fleet.push import window_start

DAYS = 7


def phone_planning(session: Session, device: Device, now: float, days: int = DAYS) -> dict:
    """`{"version", "hash", "from", "days", "tz", "tolerance_min", "tag_salt", "caregiver",
    "visits", "clients", "services", "contacts"}`; `hash` is the sha256 of the canonical body
    without `version`. May bump `device.config_version` (the caller commits)."""
    org = session.get(Organisation, device.organisation_id)
    start = window_start(org.timezone, now)
    version = stamp(device, config_bodies(session, [device], start, 2)[device.id])["version"]
    visits = list(session.scalars(select(Visit).where(
        Visit.caregiver_id == device.caregiver_id, Visit.status != "cancelled",
        Visit.planned_end >= start, Visit.planned_start < start + timedelta(days=days))
        .order_by(Visit.planned_start, Visit.id)))
    client_ids = {v.client_id for v in visits}
    service_ids = {v.service_id for v in visits if v.service_id is not None}
    clients = {c.id: {"name": c.name, "address": c.address, "tag_digests": [], "sun": False}
               for c in session.scalars(select(Client).where(Client.id.in_(client_ids)))}
    salt = tagdigest.salt(org.tag_secret)
    for b in session.scalars(select(Badge).where(
            Badge.kind == "client_tag", Badge.active, Badge.client_id.in_(client_ids))
            .order_by(Badge.uid)):
        if b.sun_uid:
            clients[b.client_id]["sun"] = True
        else:
            clients[b.client_id]["tag_digests"].append(tagdigest.digest(salt, b.uid))
    # the record at the door (codes, notes, contacts): today's clients only, never the week's
    end_of_today = window_start(org.timezone, (start + timedelta(hours=36)).timestamp())
    today = {v.client_id for v in visits if v.planned_start < end_of_today}
    agency_fields = client_record.fields(session, org.id)
    for c in session.scalars(select(Client).where(Client.id.in_(today))):
        clients[c.id]["record"] = client_record.for_caregivers(c, agency_fields)
    services = {s.id: {"name": s.name, "tasks": [[t.id, t.label] for t in s.tasks]}
                for s in session.scalars(select(Service).where(Service.id.in_(service_ids)))}
    caregiver = session.get(Caregiver, device.caregiver_id) if device.caregiver_id else None
    body = {
        "from": int(start.timestamp()), "days": days, "tz": org.timezone,
        "tolerance_min": org.tolerance_min, "tag_salt": salt,
        "caregiver": {"id": caregiver.id, "name": caregiver.name} if caregiver else None,
        "visits": [{"id": v.id, "client": v.client_id, "service": v.service_id,
                    "start": int(v.planned_start.timestamp()),
                    "end": int(v.planned_end.timestamp())} for v in visits],
        "clients": {str(k): v for k, v in clients.items()},
        "services": {str(k): v for k, v in services.items()},
        # the agency's numbers and directory, offline (fleet.contacts)
        "contacts": contacts.phone_book(session, org, device.caregiver_id),
    }
    return {"version": version, "hash": config_hash(body), **body}
