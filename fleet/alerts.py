"""Device-health alerts: raised from health reports, the last will `state` and a periodic
sweep; each resolves itself when its condition clears.

At most one alert is open per (device, kind) (a partial unique index holds it even with two
writers), so a device that keeps reporting a low battery gives one alert, not one per report.
Battery and clock drift clear only past a margin (hysteresis): a value hovering around the
threshold does not open and close an alert every minute. Everything here takes a session and
the time; the caller commits. Rules (docs/operations.md, "Alerts"):

| kind | raised when | resolved when |
|---|---|---|
| device_offline | state `offline`, or no message, for the organisation's `offline_after_s` | the device is heard from again, or is no longer active |
| low_battery | `bat` < 20 % | `bat` ≥ 25 %, or no `bat` |
| reader_failed | `rd` ≠ "ok" | `rd` = "ok" |
| clock_drift | clock offset (fleet time − device time) beyond ±120 s | within ±90 s |
| journal_full | `jfull` true | `jfull` false |
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet.models import (DEVICE_ALERT_KINDS, Alert, AlertSettings, Device, DeviceLink,
                          OPEN_DEVICE_ALERT)

log = logging.getLogger("telegest.alerts")

DEFAULT_OFFLINE_AFTER_S = 15 * 60
LOW_BATTERY_PCT, BATTERY_OK_PCT = 20, 25
CLOCK_DRIFT_S, CLOCK_OK_S = 120, 90
WATCHED_STATUSES = ("active",)  # devices in service; others never raise device_offline


@dataclass
class HealthReport:
    device_id: int
    doc: dict
    offset_s: int  # fleet time − device time when it arrived
    at: datetime


def health_conditions(doc: dict, offset_s: int) -> dict[str, tuple[bool | None, dict]]:
    """For each health kind: (True: raise, False: clear, None: leave as it is; the detail)."""
    bat = doc.get("bat")
    out: dict[str, tuple[bool | None, dict]] = {}
    if bat is None or bat >= BATTERY_OK_PCT:
        out["low_battery"] = (False, {})
    else:
        out["low_battery"] = (True if bat < LOW_BATTERY_PCT else None, {"bat": bat})
    rd = doc.get("rd", "ok")
    out["reader_failed"] = (rd != "ok", {"rd": str(rd)[:64]})
    drift = abs(offset_s)
    out["clock_drift"] = (True if drift > CLOCK_DRIFT_S else False if drift <= CLOCK_OK_S
                          else None, {"offset_s": offset_s, "tq": doc.get("tq")})
    out["journal_full"] = (bool(doc.get("jfull")), {"jd": doc.get("jd")})
    out["device_offline"] = (False, {})  # it just spoke
    return out


def _open_alerts(session: Session, device_ids: set[int],
                 kinds: tuple[str, ...] = DEVICE_ALERT_KINDS) -> dict[tuple[int, str], int]:
    if not device_ids:
        return {}
    rows = session.execute(select(Alert.id, Alert.device_id, Alert.kind).where(
        Alert.device_id.in_(device_ids), Alert.resolved_at.is_(None), Alert.kind.in_(kinds)))
    return {(r.device_id, r.kind): r.id for r in rows}


def _open(session: Session, rows: list[dict]) -> None:
    if not rows:
        return
    name = session.get_bind().dialect.name
    insert = (postgresql.insert if name == "postgresql" else sqlite.insert)(Alert.__table__)
    session.execute(insert.on_conflict_do_nothing(
        index_elements=["device_id", "kind"], index_where=text(OPEN_DEVICE_ALERT)), rows)


def _resolve(session: Session, ids: list[int], now: datetime) -> None:
    if ids:
        session.execute(update(Alert).where(Alert.id.in_(ids), Alert.resolved_at.is_(None))
                        .values(resolved_at=now, resolved=True)
                        .execution_options(synchronize_session=False))


def _orgs(session: Session, device_ids: set[int]) -> dict[int, int]:
    return dict(session.execute(select(Device.id, Device.organisation_id)
                                .where(Device.id.in_(device_ids))).all())


def _row(kind: str, device_id: int, org_id: int, at: datetime, now: datetime,
         detail: dict) -> dict:
    return {"kind": kind, "organisation_id": org_id, "device_id": device_id, "detail": detail,
            "created_at": now, "opened_at": at, "resolved": False}


def on_health(session: Session, reports: list[HealthReport], now: datetime) -> Counter:
    """Apply the health rules to accepted reports (the latest per device)."""
    counts: Counter = Counter()
    if not reports:
        return counts
    opened = _open_alerts(session, {r.device_id for r in reports})
    to_open: list[tuple[str, HealthReport, dict]] = []
    to_resolve = []
    for report in reports:
        for kind, (raise_, detail) in health_conditions(report.doc, report.offset_s).items():
            key = (report.device_id, kind)
            if raise_ and key not in opened:
                to_open.append((kind, report, detail))
            elif raise_ is False and key in opened:
                to_resolve.append(opened[key])
    if to_open:
        orgs = _orgs(session, {r.device_id for _, r, _ in to_open})
        _open(session, [_row(kind, r.device_id, orgs[r.device_id], r.at, now, detail)
                        for kind, r, detail in to_open])
        counts.update(f"alert_opened_{kind}" for kind, _, _ in to_open)
        log.info("alerts opened: %s", ", ".join(f"{k} on device {r.device_id}"
                                                for k, r, _ in to_open[:20]))
    _resolve(session, to_resolve, now)
    counts["alert_resolved"] += len(to_resolve)
    return counts


def on_state(session: Session, states: dict[int, tuple[str, datetime]],
             now: datetime) -> Counter:
    """Record each device's last will state (`online` / `offline`, when it arrived); the
    state's time moves only when it changes, so a retained copy redelivered after a worker
    restart does not make a dead device look fresh. `online` resolves device_offline."""
    counts: Counter = Counter()
    if not states:
        return counts
    links = {link.device_id: link for link in session.scalars(
        select(DeviceLink).where(DeviceLink.device_id.in_(states)))}
    new = []
    for device_id, (state, at) in sorted(states.items()):
        link = links.get(device_id)
        if link is None:
            new.append({"device_id": device_id, "state": state, "changed_at": at})
        elif link.state != state:
            link.state, link.changed_at = state, at
        counts[f"state_{state}"] += 1
    if new:
        # every worker gets every state (STATE_TOPIC is not shared): another may insert the
        # same device's first link between our select and our insert. An upsert, in device
        # order (two workers' batches never wait on each other crosswise)
        name = session.get_bind().dialect.name
        table = DeviceLink.__table__
        insert = (postgresql.insert if name == "postgresql" else sqlite.insert)(table)
        session.execute(insert.on_conflict_do_update(
            index_elements=["device_id"],
            set_={"state": insert.excluded.state, "changed_at": insert.excluded.changed_at},
            where=table.c.state != insert.excluded.state), new)
    online = {d for d, (state, _) in states.items() if state == "online"}
    ids = list(_open_alerts(session, online, ("device_offline",)).values())
    _resolve(session, ids, now)
    counts["alert_resolved"] += len(ids)
    session.flush()
    return counts


def offline_since(last_seen: datetime | None, state: str | None,
                  changed_at: datetime | None) -> datetime | None:
    """Since when a device has given no sign of life: its `offline` will (unless a message
    came after it), else the later of its last message and its `online` state."""
    if state == "offline" and changed_at is not None and (last_seen is None
                                                          or last_seen <= changed_at):
        return changed_at
    alive = [t for t in (last_seen, changed_at if state == "online" else None) if t]
    return max(alive) if alive else None


def sweep(session: Session, now: datetime,
          default_offline_after_s: int = DEFAULT_OFFLINE_AFTER_S) -> Counter:
    """Open device_offline for every active device silent for longer than its organisation's
    setting; resolve the open ones whose device is back or no longer active."""
    counts: Counter = Counter()
    # a device heard from within the shortest delay of any organisation cannot be offline
    # (offline_since is never before its last message): only the others are read, so a sweep
    # of 50,000 reporting devices reads none (it loaded every row, 2 s of the leader's CPU
    # every 30 s: docs/scaling.md)
    shortest = session.scalar(select(func.min(AlertSettings.offline_after_s)))
    cutoff = now - timedelta(seconds=min(default_offline_after_s, shortest)
                             if shortest is not None else default_offline_after_s)
    rows = session.execute(
        select(Device.id, Device.organisation_id, Device.last_seen, DeviceLink.state,
               DeviceLink.changed_at,
               func.coalesce(AlertSettings.offline_after_s, default_offline_after_s)
               .label("after_s"))
        .outerjoin(DeviceLink, DeviceLink.device_id == Device.id)
        .outerjoin(AlertSettings, AlertSettings.organisation_id == Device.organisation_id)
        .where(Device.status.in_(WATCHED_STATUSES),
               or_(Device.last_seen.is_(None), Device.last_seen < cutoff)))
    offline: dict[int, tuple[int, datetime, str]] = {}
    for r in rows:
        since = offline_since(r.last_seen, r.state, r.changed_at)
        if since is not None and now - since >= timedelta(seconds=r.after_s):
            offline[r.id] = (r.organisation_id, since, "will" if r.state == "offline" and
                             since == r.changed_at else "silent")
    opened = {r.device_id: r.id for r in session.execute(
        select(Alert.id, Alert.device_id).where(Alert.kind == "device_offline",
                                                Alert.resolved_at.is_(None)))}
    new = [_row("device_offline", d, org, since, now,
                {"since": since.isoformat(), "by": by})
           for d, (org, since, by) in offline.items() if d not in opened]
    _open(session, new)
    gone = [alert_id for d, alert_id in opened.items() if d not in offline]
    _resolve(session, gone, now)
    counts["alert_opened_device_offline"] += len(new)
    counts["alert_resolved"] += len(gone)
    if new or gone:
        log.info("offline sweep: %d opened, %d resolved", len(new), len(gone))
    return counts


def set_offline_after(session: Session, organisation_id: int, seconds: int) -> None:
    """The organisation's offline delay (seconds; default 15 minutes)."""
    row = session.get(AlertSettings, organisation_id)
    if row is None:
        session.add(AlertSettings(organisation_id=organisation_id, offline_after_s=seconds))
    else:
        row.offline_after_s = seconds
    session.flush()


def acknowledge(session: Session, alert: Alert, who: str, user_id: int | None,
                now: datetime) -> bool:
    """Mark `alert` seen by `who`; False when it already was (the first acknowledgement
    stays)."""
    if alert.acknowledged_at is not None:
        return False
    alert.acknowledged_at, alert.acknowledged_who, alert.acknowledged_by = now, who[:200], user_id
    return True
