"""Planning push: each device's config, retained on down/config, sent only when it changed.

The wire format (docs/protocol.md, "Config"): the config body's canonical JSON text (the text
whose sha256 is Device.config_hash) travels whole in the manifest on `down/config` when it fits
in 1 KiB, else sliced into parts on `down/config/<i>`, published before the manifest. All are
QoS 1 and retained, so a device gets its config on connect.

ConfigPusher.poll() runs in the worker's process (its own thread, the worker's MQTT client).
It finds the devices whose config may have changed cheaply, without extra columns: visits
updated since the last scan (their home's readers, their caregiver's phones, and the devices
whose last config held them), a changed badge or device table (a cheap aggregate first),
changed organisation settings, devices never pushed; and a full pass at start, when a day
starts (the window is "today and tomorrow" in the organisation's time zone) and every
`full_every_s`. For each candidate it computes the config in batches, compares its hash with
Device.config_hash and publishes only when it differs, after the commit of the new version.

A publish that raises is sent again (same version) at the next poll. A publish may also return
a receipt with `is_published()` (fleet.down_path on a NATS cluster: the gateway's PUBACK after
it stored the retained message): the config counts as pushed only once every message of it is
confirmed, and one not confirmed within `confirm_s` is sent again.

Live first, retained behind (`announce`, on a NATS cluster): storing a retained message is a
replicated JetStream write that the gateway makes inside the publishing connection's read loop,
about 400 a second over twelve connections on the bench machine (docs/scaling.md), so a
change that touches 50,000 devices would take two minutes to reach the last of them. With
`announce`, each batch's configs are also sent at once as plain messages (QoS 0, not
retained) that reach the devices connected now, and the retained copies, for the devices that
connect later, are published after the whole pass. A device gets the same version twice and
ignores the second (firmware/config.py: an equal version is stale); a live copy lost is
harmless, the retained one follows and is confirmed as before. Until its retained copy is
confirmed, a device that comes online (its retained `online` state, which it publishes after
subscribing) gets the live copy again (`reannounce`): it would otherwise read the previous
version from the broker for as long as the stores take (about 95 s for 50,000 devices).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from fleet import webpush
from fleet.models import Badge, Device, Organisation, Visit
from fleet.planning import canonical, config_bodies, config_hash, stamp

log = logging.getLogger("telegest.push")

MAX_MESSAGE = 1024
MAX_CONFIG = 24 * 1024  # the device refuses a config text longer than this
_GONE = ("wiped", "retired", "blocked")  # no config for them (a blocked box may be stolen)

Publish = Callable[[str, bytes, bool], object]  # topic, payload, retain -> None or a receipt
Announce = Callable[[str, bytes], None]  # topic, payload: a live copy, not retained
CONFIRM_S = 60.0  # a config whose receipts are not all confirmed by then is sent again


def planning_changed(session: Session, device: Device, version: int) -> None:
    """A phone's planning changed before it fetched it: a Web Push wakes it (fleet.webpush);
    without one it sees the change at its next poll anyway."""
    webpush.notify_device(session, device, "planning", "Planning modifié · Planning changed",
                          "Votre planning a changé : ouvrez l'application · Your planning "
                          "changed: open the app", "/app/",
                          dedupe=f"planning:{device.id}:{version}")


# -- wire format --------------------------------------------------------------------------------

def _compact(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _escaped_len(c: str) -> int:
    return 2 if c in '"\\' else 1  # canonical text is ASCII without control characters


def encode_config(device: str, version: int, text: str,
                  limit: int = MAX_MESSAGE) -> list[tuple[str, bytes]]:
    """[(topic, payload)] to publish, in this order, for config `text` at `version`:
    the parts (if any) first, then the manifest."""
    base = f"tg/v1/{device}/down/config"
    digest = hashlib.sha256(text.encode()).hexdigest()
    inline = _compact({"v": version, "hash": digest, "parts": 0, "d": text})
    if len(inline) <= limit:
        return [(base, inline)]
    slices: list[str] = []
    start = 0
    while start < len(text):
        room = limit - len(_compact({"v": version, "i": len(slices), "d": ""}))
        end, used = start, 0
        while end < len(text) and used + _escaped_len(text[end]) <= room:
            used += _escaped_len(text[end])
            end += 1
        slices.append(text[start:end])
        start = end
    out = [(f"{base}/{i}", _compact({"v": version, "i": i, "d": d}))
           for i, d in enumerate(slices)]
    out.append((base, _compact({"v": version, "hash": digest, "parts": len(slices)})))
    return out


def clear_parts(device: str, first: int, last: int) -> list[tuple[str, bytes]]:
    """Empty retained payloads that delete parts first..last-1 left by a longer config."""
    return [(f"tg/v1/{device}/down/config/{i}", b"") for i in range(first, last)]


# -- which devices, and pushing them ------------------------------------------------------------

def window_start(tz: str, now: float) -> datetime:
    """Midnight today in `tz` (UTC when unknown), as a UTC datetime: the config's window
    moves once a day, so a visit ending does not change every device's config."""
    try:
        zone = ZoneInfo(tz)
    except Exception:
        zone = ZoneInfo("UTC")
    local = datetime.fromtimestamp(now, zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)


class ConfigPusher:
    def __init__(self, sessions: sessionmaker, publish: Publish, *, days: int = 2,
                 full_every_s: float = 600, overlap_s: float = 10, batch: int = 500,
                 clock: Callable[[], float] = time.time, confirm_s: float = CONFIRM_S,
                 announce: Announce | None = None) -> None:
        self.sessions, self.publish, self.announce = sessions, publish, announce
        self.confirm_s = confirm_s
        self.days, self.full_every_s, self.overlap_s, self.batch = (days, full_every_s,
                                                                    overlap_s, batch)
        self.clock = clock
        self.counts: Counter = Counter()
        self._since: datetime | None = None  # start of the last scan (UTC)
        self._full_at = 0.0
        self._orgs: dict[int, tuple] = {}  # org -> (tz, tolerance, window start)
        self._badges: tuple | None = None  # cheap aggregates of the tables
        self._devices: tuple | None = None
        self._visit_devices: dict[int, set[int]] = {}  # visit -> devices whose config held it
        self._device_visits: dict[int, frozenset[int]] = {}
        self._parts: dict[int, int] = {}  # device -> parts of its last published config
        self._retry: set[int] = set()  # committed but not published: sent again next poll
        # published, waiting for the broker's receipts:
        # device -> (sent at, receipts, parts, ident)
        self._unconfirmed: dict[int, tuple[float, list, int, str]] = {}
        # announced, its retained copy not yet confirmed: ident -> messages (read by
        # `reannounce` from another thread: single dict operations)
        self._live: dict[str, list[tuple[str, bytes]]] = {}

    def restart(self) -> None:
        """Forget what the scans learnt (which visits each device's config held, the tables'
        aggregates): another pusher ran meanwhile (the worker led again after losing its
        lease), so the next poll is a full pass. Counts and unpublished configs are kept."""
        self._since, self._full_at, self._orgs = None, 0.0, {}
        self._badges = self._devices = None
        self._visit_devices, self._device_visits = {}, {}

    # -- the loop body ----------------------------------------------------------------------
    def poll(self) -> int:
        """One scan: push what changed; returns how many devices got a new config."""
        self.confirm()
        now = self.clock()
        started = datetime.fromtimestamp(now, timezone.utc)
        with self.sessions() as session:
            full = self._since is None or now - self._full_at >= self.full_every_s
            full |= self._orgs_changed(session, now)
            full |= self._tables_changed(session)
            if full:
                ids = None
            else:
                ids = self._changed(session, self._since - timedelta(seconds=self.overlap_s))
        self._since = started
        if full:
            self._full_at = now
            self.counts["full_passes"] += 1
        retry, self._retry = self._retry, set()
        n = self.push(retry, now, force=True) if retry else 0
        return n + self.push(ids, now)

    def confirm(self) -> int:
        """Count the configs whose receipts all came as pushed; those waiting longer than
        `confirm_s` go to the next poll's retries. Returns how many are still waiting."""
        now = self.clock()
        for dev_id, (sent, receipts, parts, ident) in list(self._unconfirmed.items()):
            try:
                done = all(r.is_published() for r in receipts)
            except Exception:  # the receipt says it failed (paho raises): sent again
                done, sent = False, -float("inf")
            if done:
                del self._unconfirmed[dev_id]
                self._parts[dev_id] = parts
                self.counts["pushed"] += 1
                self._live.pop(ident, None)  # stored: no live copy needed any more
            elif now - sent > self.confirm_s:
                del self._unconfirmed[dev_id]
                self._retry.add(dev_id)
                self.counts["unconfirmed"] += 1
                log.warning("config of device %d not confirmed by the broker in %.0f s; sent "
                            "again", dev_id, self.confirm_s)
        return len(self._unconfirmed)

    def _orgs_changed(self, session: Session, now: float) -> bool:
        seen = {o.id: (o.timezone, o.tolerance_min, window_start(o.timezone, now))
                for o in session.scalars(select(Organisation))}
        changed = seen != self._orgs
        self._orgs = seen
        return changed

    def _tables_changed(self, session: Session) -> bool:
        # An edit of a badge or a device row leaves no timestamp: an aggregate that moves with
        # additions, (de)activations and reassignments tells when to look again (full pass).
        b = tuple(session.execute(select(
            func.count(Badge.id), func.max(Badge.id),
            func.sum(case((Badge.active, Badge.id), else_=0)),
            func.sum(func.coalesce(Badge.caregiver_id, 0) + func.coalesce(Badge.client_id, 0)),
        )).one())
        d = tuple(session.execute(select(
            func.count(Device.id), func.max(Device.id),
            func.sum(func.coalesce(Device.client_id, 0) * 7
                     + func.coalesce(Device.caregiver_id, 0)),
            func.sum(case((Device.status.in_(_GONE), Device.id), else_=0)),
        )).one())
        changed = (b, d) != (self._badges, self._devices)
        self._badges, self._devices = b, d
        return changed and self._since is not None

    def _changed(self, session: Session, since: datetime) -> set[int]:
        """Devices whose config may have changed since `since` (visits edited or created)."""
        clients, people, ids = set(), set(), set()
        for vid, client, person in session.execute(select(
                Visit.id, Visit.client_id, Visit.caregiver_id).where(
                or_(Visit.updated_at > since, Visit.created_at > since))):
            clients.add(client)
            people.add(person)
            ids |= self._visit_devices.get(vid, set())  # a visit moved away from a home
        q = select(Device.id).where(Device.status.not_in(_GONE))
        if clients:
            ids |= set(session.scalars(q.where(Device.kind == "reader",
                                               Device.client_id.in_(clients))))
        if people:
            ids |= set(session.scalars(q.where(Device.kind == "phone",
                                               Device.caregiver_id.in_(people))))
        ids |= set(session.scalars(q.where(Device.config_hash.is_(None))))
        return ids

    def push(self, device_ids: Iterable[int] | None, now: float | None = None,
             force: bool = False) -> int:
        """Compute the config of these devices (all when None), publish those that changed
        (all when `force`); returns how many were published."""
        now = self.clock() if now is None else now
        with self.sessions() as session:
            q = select(Device.id).where(Device.status.not_in(_GONE)).order_by(Device.id)
            if device_ids is None:
                ids = list(session.scalars(q))
            else:
                ids = sorted(set(device_ids))
        published = 0
        behind: list[tuple] = []  # announced: their retained copies go after the whole pass
        for i in range(0, len(ids), self.batch):
            out = self._compute_batch(ids[i:i + self.batch], now, force)
            published += len(out)
            for dev_id, ident, version, text in out:
                messages = encode_config(ident, version, text)
                if self.announce is None:
                    self._send(dev_id, ident, version, text, messages)
                else:
                    self._announce(ident, version, messages)
                    behind.append((dev_id, ident, version, text, messages))
        for config in behind:
            self._send(*config)
        return published

    def _compute_batch(self, ids: list[int], now: float, force: bool) -> list[tuple]:
        """The new configs of these devices, their versions committed:
        [(device id, ident, version, canonical text)]."""
        out = []
        with self.sessions() as session:
            devices = list(session.scalars(select(Device).where(
                Device.id.in_(ids), Device.status.not_in(_GONE))))
            orgs = {o.id: o for o in session.scalars(select(Organisation).where(
                Organisation.id.in_({d.organisation_id for d in devices})))}
            by_org: dict[int, list[Device]] = {}
            for d in devices:
                by_org.setdefault(d.organisation_id, []).append(d)
            for org_id, group in by_org.items():
                start = window_start(orgs[org_id].timezone, now)
                bodies = config_bodies(session, group, start, self.days)
                for d in group:
                    body = bodies[d.id]
                    self._remember(d.id, body)
                    if config_hash(body) == d.config_hash and not force:
                        self.counts["unchanged"] += 1
                        continue
                    seen = d.config_hash
                    cfg = stamp(d, body)
                    if d.kind == "phone" and seen is not None:  # not its first planning
                        planning_changed(session, d, cfg["version"])
                    out.append((d.id, d.ident, cfg["version"], canonical(body)))
            session.commit()  # the new versions first: a version is never reused
        return out

    def _announce(self, ident: str, version: int, messages: list[tuple[str, bytes]]) -> None:
        """The live copy: best effort, the retained one follows."""
        self._live[ident] = messages
        try:
            for topic, payload in messages:
                self.announce(topic, payload)
            self.counts["announced"] += 1
        except Exception as e:  # no NATS connection now: the retained copy will do
            self.counts["announce_errors"] += 1
            log.debug("live copy of config %d of %s not sent (%s)", version, ident, e)

    def reannounce(self, ident: str) -> bool:
        """The device `ident` came online: the live copy again if its retained copy is not
        stored yet (what it just read from the broker may be the previous version). Any
        thread; never raises."""
        live = self._live.get(ident)
        if live is None or self.announce is None:
            return False
        try:
            for topic, payload in live:
                self.announce(topic, payload)
        except Exception as e:  # the retained copy will do
            log.debug("live copy for %s not sent again (%s)", ident, e)
            return False
        self.counts["reannounced"] += 1
        return True

    def _remember(self, dev_id: int, body: dict) -> None:
        new = frozenset(row[0] for row in body["visits"])
        old = self._device_visits.get(dev_id, frozenset())
        for vid in old - new:
            s = self._visit_devices.get(vid)
            if s is not None:
                s.discard(dev_id)
                if not s:
                    del self._visit_devices[vid]
        for vid in new - old:
            self._visit_devices.setdefault(vid, set()).add(dev_id)
        self._device_visits[dev_id] = new

    def _send(self, dev_id: int, ident: str, version: int, text: str,
              encoded: list[tuple[str, bytes]]) -> None:
        """Publish `encoded` (encode_config of `text`) retained, then the deletions of the
        parts a longer config left."""
        if len(text) > MAX_CONFIG:
            log.warning("config of %s is %d bytes, over the device's %d: devices will refuse "
                        "it", ident, len(text), MAX_CONFIG)
            self.counts["oversized"] += 1
        parts = len(encoded) - 1
        messages = encoded + clear_parts(ident, parts, self._parts.get(dev_id, 0))
        receipts = []
        self._unconfirmed.pop(dev_id, None)  # sent again: the new receipts count
        try:
            for topic, payload in messages:
                receipt = self.publish(topic, payload, True)
                if receipt is not None and hasattr(receipt, "is_published"):
                    receipts.append(receipt)
                self.counts["bytes"] += len(payload)
                self.counts["messages"] += 1
        except Exception as e:
            self.counts["errors"] += 1
            self._retry.add(dev_id)
            if isinstance(e, ConnectionError):  # the broker away or slow: said once a poll
                log.debug("config %d of %s not published (%s); again at the next poll",
                          version, ident, e)
            else:
                log.exception("config %d of %s not published; again at the next poll",
                              version, ident)
            return
        if receipts:
            self._unconfirmed[dev_id] = (self.clock(), receipts, parts, ident)
            return
        self._parts[dev_id] = parts
        self.counts["pushed"] += 1
        self._live.pop(ident, None)
