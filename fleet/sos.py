"""SOS (DATI, the isolated worker's alarm): one data layer for the gateway (a phone's SOS),
the ingest (a reader box's SOS button), the console's banner and `/api/v1/sos`.

An SOS is stored once per (device, uid): the device keeps and resends it until the fleet
answers that it is stored, and a resend changes nothing (`raise_sos` answers the stored row).
Storing it queues, in the same transaction, one e-mail per on-call address of the agency
(its settings' `oncall_emails`) through the outbox. Who, when, the visit planned now or last
(client and address) are resolved here: for a phone from its caregiver's planning, for a box
from its client's. A coordinator's acknowledgement is audited and pushed to the caregiver's
phones (fleet.webpush); a phone also reads it at its next sync (`for_device`).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet import audit, outbox, webpush
from fleet.models import (AlertSettings, Caregiver, Client, Device, Organisation, SosAlert,
                          Visit, VisitRecord)
from fleet.types import utcnow
from fleet.visit_alerts import oncall_addresses

log = logging.getLogger("telegest.sos")
PHONE_HISTORY = timedelta(days=1)
MAX_MESSAGE = 1024
_UID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # what a phone is told of its own SOS at each sync
SUBJECT = "ALERTE SOS · SOS alert"


@dataclass(frozen=True)
class Position:
    lat: float
    lon: float
    accuracy_m: int


def raise_sos(session: Session, device: Device, uid: str, raised_at: datetime,
              position: Position | None = None, visit_hint: int | None = None,
              public_url: str = "", now: datetime | None = None) -> tuple[SosAlert, bool]:
    """Store the SOS `uid` of `device` (or find it: a resend) and queue its e-mails; returns
    (row, new). The caller commits."""
    found = _find(session, device.id, uid)
    if found is not None:
        return found, False
    now = now or utcnow()
    visit = _visit(session, device, now, visit_hint)
    alert = SosAlert(organisation_id=device.organisation_id, device_id=device.id, uid=uid,
                     source="phone" if device.kind == "phone" else "box",
                     caregiver_id=device.caregiver_id or (visit.caregiver_id if visit and
                                                          _covers(visit, now) else None),
                     visit_id=visit.id if visit else None,
                     client_id=visit.client_id if visit else device.client_id,
                     raised_at=min(raised_at, now), received_at=now)
    if position is not None:
        alert.lat, alert.lon, alert.accuracy_m = position.lat, position.lon, position.accuracy_m
    try:
        with session.begin_nested():  # two resends at once: one row, the other finds it
            session.add(alert)
    except IntegrityError:
        return _find(session, device.id, uid), False
    audit.record(session, f"device:{device.ident}", "sos", f"sos:{alert.id}", role="device",
                 detail={"source": alert.source, "visit": alert.visit_id})
    text = describe(session, alert, public_url)
    rules = session.get(AlertSettings, device.organisation_id)
    for address in oncall_addresses(rules.oncall_emails if rules else ""):
        outbox.enqueue_email(session, organisation_id=alert.organisation_id, to=address,
                             subject=f"{SUBJECT} — {text['who']}", body=text["text"],
                             dedupe_key=f"sos:{alert.id}:{address.lower()}", now=now)
    return alert, True


def handle_box(session: Session, ident: str, payload: bytes, public_url: str = "",
               now: datetime | None = None) -> bytes | None:
    """A reader box's `up/sos` (docs/protocol.md, "SOS"): stored (or found: a resend), then
    the `down/sos` payload to publish after the caller's commit; None for a message the fleet
    cannot take (malformed, an unknown or ended device: logged, not answered)."""
    now = now or utcnow()
    try:
        doc = json.loads(payload) if len(payload) <= MAX_MESSAGE else None
        uid, ts = doc["id"], doc["ts"]
        if type(uid) is not str or not _UID.match(uid) or type(ts) is not int or ts < 0:
            raise ValueError
    except (ValueError, TypeError, KeyError):
        log.warning("up/sos of %s refused: malformed", ident[:64])
        return None
    device = session.scalars(select(Device).where(Device.ident == ident)).first()
    if device is None or device.kind != "reader" or device.status not in ("provisioned",
                                                                           "active"):
        log.warning("up/sos of %s refused: not an active reader", ident[:64])
        return None
    raised = datetime.fromtimestamp(min(ts, 2**40), timezone.utc)
    if abs((now - raised).total_seconds()) > 7 * 86400:  # an unset clock: the fleet's time
        raised = now
    raise_sos(session, device, uid, raised, public_url=public_url, now=now)
    return json.dumps({"id": uid}, separators=(",", ":")).encode()


def _find(session: Session, device_id: int, uid: str) -> SosAlert | None:
    return session.scalars(select(SosAlert).where(SosAlert.device_id == device_id,
                                                  SosAlert.uid == uid)).first()


def _covers(visit: Visit, now: datetime) -> bool:
    return visit.planned_start <= now <= visit.planned_end


def _visit(session: Session, device: Device, now: datetime, hint: int | None) -> Visit | None:
    """The one the phone names (if it is on its caregiver's planning), else the visit under way
    (clocked in, not out), else the one planned now, else the last one begun: the caregiver's
    for a phone, the home's for a box."""
    q = select(Visit).where(Visit.status != "cancelled",
                            Visit.organisation_id == device.organisation_id)
    if device.kind == "phone":
        if device.caregiver_id is None:
            return None
        q = q.where(Visit.caregiver_id == device.caregiver_id)
        if hint is not None:
            named = session.scalars(q.where(Visit.id == hint)).first()
            if named is not None:
                return named
    elif device.client_id is not None:
        q = q.where(Visit.client_id == device.client_id)
    else:
        return None
    begun = session.scalars(q.join(VisitRecord, VisitRecord.visit_id == Visit.id).where(
        VisitRecord.actual_start.is_not(None), VisitRecord.actual_end.is_(None),
        VisitRecord.actual_start <= now).order_by(VisitRecord.actual_start.desc())).first()
    if begun is not None:  # clocked in and not out: that is where the caregiver is
        return begun
    now_visit = session.scalars(q.where(Visit.planned_start <= now, Visit.planned_end >= now)
                                .order_by(Visit.planned_start.desc(), Visit.id)).first()
    return now_visit or session.scalars(q.where(Visit.planned_start <= now)
                                        .order_by(Visit.planned_start.desc(), Visit.id)).first()


def describe(session: Session, alert: SosAlert, public_url: str = "") -> dict:
    """What the console, the API and the e-mail show: who, when (the agency's time), the
    visit's client and address, the position and a map link; `text` is the e-mail's body."""
    org = session.get(Organisation, alert.organisation_id)
    tz = ZoneInfo(org.timezone if org else "UTC")
    device = session.get(Device, alert.device_id)
    caregiver = session.get(Caregiver, alert.caregiver_id) if alert.caregiver_id else None
    client = session.get(Client, alert.client_id) if alert.client_id else None
    visit = session.get(Visit, alert.visit_id) if alert.visit_id else None
    when = alert.raised_at.astimezone(tz)
    who = caregiver.name if caregiver else f"box {device.ident}" if device else "?"
    address = ", ".join(p for p in ((client.address, f"{client.postcode} {client.city}".strip())
                                    if client else ()) if p)
    out = {
        "id": alert.id, "source": alert.source, "who": who,
        "device": device.ident if device else None,
        "at": when.strftime("%d/%m/%Y %H:%M:%S"),
        "client": client.name if client else None, "address": address or None,
        "visit": None, "position": None, "map": None,
        "acknowledged_at": (alert.acknowledged_at.astimezone(tz).strftime("%d/%m/%Y %H:%M")
                            if alert.acknowledged_at else None),
        "acknowledged_by": alert.acknowledged_who,
    }
    if visit is not None:
        start, end = visit.planned_start.astimezone(tz), visit.planned_end.astimezone(tz)
        now_or_last = "en cours · now" if _covers(visit, alert.raised_at) else \
            "dernière · last"
        out["visit"] = f"{start:%d/%m %H:%M}–{end:%H:%M} ({now_or_last})"
    if alert.lat is not None and alert.lon is not None:
        out["position"] = f"{alert.lat:.5f}, {alert.lon:.5f} (± {alert.accuracy_m} m)"
        out["map"] = (f"https://www.openstreetmap.org/?mlat={alert.lat:.5f}&mlon="
                      f"{alert.lon:.5f}#map=17/{alert.lat:.5f}/{alert.lon:.5f}")
    lines = [f"SOS : {who}" + (" (bouton du boîtier · reader box button)"
                               if alert.source == "box" else ""),
             f"Quand · When : {out['at']}",
             f"Usager · Client : {out['client'] or '—'}",
             f"Adresse · Address : {out['address'] or '—'}",
             f"Intervention · Visit : {out['visit'] or '—'}",
             f"Position : {out['position'] or 'inconnue · unknown'}"]
    if out["map"]:
        lines.append(f"Carte · Map : {out['map']}")
    if public_url:
        lines.append(f"Console : {public_url.rstrip('/')}/sos")
    out["text"] = "\n".join(lines) + "\n"
    return out


def acknowledge(session: Session, alert: SosAlert, who: str, user_id: int | None,
                role: str | None, now: datetime | None = None) -> bool:
    """A coordinator has seen the SOS: audited, pushed to the caregiver's phones; False (and
    nothing done) when it already was. The caller commits."""
    if alert.acknowledged_at is not None:
        return False
    now = now or utcnow()
    alert.acknowledged_at, alert.acknowledged_who, alert.acknowledged_by = now, who[:200], user_id
    audit.record(session, who, "sos_ack", f"sos:{alert.id}", role=role,
                 detail={"raised_at": alert.raised_at.isoformat()})
    if alert.caregiver_id is not None:
        org = session.get(Organisation, alert.organisation_id)
        at = now.astimezone(ZoneInfo(org.timezone if org else "UTC"))
        webpush.notify_caregiver(session, alert.caregiver_id, "sos_ack",
                                 "SOS pris en compte · SOS received",
                                 f"{who} a vu votre alerte à {at:%H:%M} · saw your alert",
                                 "/app/#/sos", dedupe=f"sos_ack:{alert.id}", urgent=True)
    return True


def open_alerts(session: Session, organisation_id: int) -> list[SosAlert]:
    """Not yet acknowledged, oldest first (the banner shows them all)."""
    return list(session.scalars(select(SosAlert).where(
        SosAlert.organisation_id == organisation_id, SosAlert.acknowledged_at.is_(None))
        .order_by(SosAlert.id)))


def for_device(session: Session, device: Device, now: datetime | None = None) -> list[dict]:
    """The device's SOS of the last day and whether each was acknowledged (the phone's
    sync: a phone without notifications learns it there)."""
    since = (now or utcnow()) - PHONE_HISTORY
    return [{"id": a.uid, "stored": True,
             "acknowledged_at": int(a.acknowledged_at.timestamp()) if a.acknowledged_at
             else None, "acknowledged_by": a.acknowledged_who}
            for a in session.scalars(select(SosAlert).where(
                SosAlert.device_id == device.id, SosAlert.received_at >= since)
                .order_by(SosAlert.id))]
