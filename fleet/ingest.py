"""Ingest of device messages: checks, storage, acks. Pure and idempotent: no MQTT here.

One call of `ingest_batch` handles many messages in the caller's transaction with a handful of
queries, whatever the number of messages: devices are loaded once, events are bulk-inserted
with INSERT ... ON CONFLICT DO NOTHING on (device_id, seq), and the acks are computed from what
the database holds. The caller commits, then publishes the acks (never before).
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy import TextClause, bindparam, case, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet import alerts, bulk, checks
from fleet.models import ClockEvent, Device, IngestCounter, Rejection

log = logging.getLogger("telegest.ingest")

Message = tuple[str, bytes | str, "datetime | float"]
# a device whose identity ended: its clock messages are refused whole (`device_refused`, kept
# with the device and the raw text, nothing acked, nothing matched) and its health dropped
ENDED = ("blocked", "wiped", "retired")
STATE_TOPIC = re.compile(r"^tg/v1/([A-Za-z0-9_-]{1,64})/state$")  # the last will
_RANGES_PER_QUERY = 200


@dataclass
class Ack:
    device: str
    ack: int
    rejected: list[dict] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return f"tg/v1/{self.device}/down/ack"

    @property
    def payload(self) -> bytes:
        return json.dumps({"ack": self.ack, "rejected": self.rejected},
                          separators=(",", ":")).encode()


@dataclass
class IngestResult:
    """What happened to one clock message (`handle_clock`)."""

    refused: str | None = None        # message-level reason: nothing stored, nothing acked
    ack: Ack | None = None
    stored: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)


@dataclass
class _Dev:
    id: int
    ident: str
    acked_seq: int


@dataclass
class _Batch:
    counts: Counter = field(default_factory=Counter)
    rejections: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    acks: dict[str, Ack] = field(default_factory=dict)
    results: list[IngestResult] = field(default_factory=list)


def _when(received_at: datetime | float) -> datetime:
    if isinstance(received_at, datetime):
        return received_at.astimezone(timezone.utc)
    return datetime.fromtimestamp(received_at, timezone.utc)


def _text(payload: bytes) -> str:
    # NUL is shown as U+FFFD like any undecodable byte: PostgreSQL's text refuses it
    return payload[:1024].decode("utf-8", errors="replace")[:1024].replace("\x00", "\ufffd")


def _insert(session: Session, table):
    name = session.get_bind().dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def ingest_batch(session: Session, messages: Iterable[Message], *,
                 counters: Counter | None = None, source: str = "ingest") -> list[Ack]:
    """Check and store `messages` ((topic, payload, received_at) of up/clock and up/health);
    return the ack to publish per device, once the caller has committed. `counters`, when
    given, is incremented (stored, duplicate, seq_gap, health and every rejection reason);
    the same counts are added to the ingest_counters table under `source`."""
    batch = _ingest(session, list(messages))
    if counters is not None:
        counters.update(batch.counts)
    _save_counts(session, source, batch.counts)
    return list(batch.acks.values())


def handle_clock(session: Session, device_ident: str, payload: bytes,
                 now: datetime | float) -> IngestResult:
    """One up/clock message (the device gateway's path, and tests)."""
    batch = _ingest(session, [(f"tg/v1/{device_ident}/up/clock", payload, now)])
    _save_counts(session, "gateway", batch.counts)
    return batch.results[0]


def handle_health(session: Session, device_ident: str, payload: bytes,
                  now: datetime | float) -> bool:
    """One up/health message; False when it was refused (bad_health, unknown_device)."""
    batch = _ingest(session, [(f"tg/v1/{device_ident}/up/health", payload, now)])
    _save_counts(session, "gateway", batch.counts)
    return batch.counts["health"] == 1


def _ingest(session: Session, messages: list[Message]) -> _Batch:
    batch = _Batch()
    clocks: list[tuple[str, str, bytes, datetime, dict, IngestResult]] = []
    healths: list[tuple[str, bytes, datetime]] = []
    states: list[tuple[str, bytes, datetime]] = []
    for topic, payload, received_at in messages:
        raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        when = _when(received_at)
        if (s := STATE_TOPIC.match(topic)) is not None:
            states.append((s.group(1), raw, when))
            continue
        m = checks.TOPIC.match(topic)
        if not m:
            batch.counts["bad_topic"] += 1
            log.warning("message on unexpected topic %r dropped", topic[:255])
            continue
        ident, kind = m.groups()
        if kind == "health":
            healths.append((ident, raw, when))
            continue
        result = IngestResult()
        batch.results.append(result)
        reason, doc = _parse_batch(raw)
        if reason:
            _refuse(batch, result, ident, None, topic, raw, reason)
        else:
            clocks.append((ident, topic, raw, when, doc, result))

    devices, ended = _load_devices(session, {c[0] for c in clocks} | {h[0] for h in healths}
                                   | {s[0] for s in states})
    known = []
    for ident, topic, raw, when, doc, result in clocks:
        dev = devices.get(ident)
        if ident in ended:
            _refuse(batch, result, ident, ended[ident], topic, raw, "device_refused")
        elif dev is None:
            _refuse(batch, result, ident, None, topic, raw, "unknown_device")
        else:
            known.append((dev, topic, raw, when, doc, result))
    if known:
        _store_events(session, batch, known)
    if batch.rejections:
        session.execute(_insert(session, Rejection.__table__), batch.rejections)
    if known:
        _advance_acks(session, batch, known)
    _store_health(session, batch, devices, healths)
    _store_states(session, batch, devices, states)
    return batch


def _parse_batch(raw: bytes) -> tuple[str | None, dict]:
    if len(raw) > checks.MAX_PAYLOAD:
        return "oversized", {}
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "malformed_json", {}
    return checks.batch_problem(doc), doc


def _refuse(batch: _Batch, result: IngestResult, ident: str, dev_id: int | None, topic: str,
            raw: bytes, reason: str) -> None:
    result.refused = reason
    batch.counts[reason] += 1
    batch.rejections.append({"device_ident": ident[:64], "device_id": dev_id,
                             "topic": topic[:255], "seq": None, "reason": reason,
                             "raw": _text(raw), "created_at": datetime.now(timezone.utc)})
    log.warning("%s: message refused (%s), %d bytes", ident, reason, len(raw))


def _load_devices(session: Session,
                  idents: set[str]) -> tuple[dict[str, _Dev], dict[str, int]]:
    """The devices in service by ident, and the ids of those whose identity ended."""
    if not idents:
        return {}, {}
    rows = list(session.execute(select(Device.id, Device.ident, Device.acked_seq, Device.status)
                                .where(Device.ident.in_(idents))))
    return ({r.ident: _Dev(r.id, r.ident, r.acked_seq) for r in rows if r.status not in ENDED},
            {r.ident: r.id for r in rows if r.status in ENDED})


def _known_pairs(session: Session, known: list) -> tuple[dict, set]:
    """(device_id, seq) -> content of stored events, and the set of rejected pairs, among the
    seqs this batch carries."""
    ids = {k[0].id for k in known}
    seqs = {checks.event_seq(ev) for k in known for ev in k[4]["events"]} - {None}
    if not seqs:
        return {}, set()
    stored = {(r.device_id, r.seq): checks.content(r.raw) for r in session.execute(
        select(ClockEvent.device_id, ClockEvent.seq, ClockEvent.raw)
        .where(ClockEvent.device_id.in_(ids), ClockEvent.seq.in_(seqs)))}
    rejected = {(r.device_id, r.seq) for r in session.execute(
        select(Rejection.device_id, Rejection.seq)
        .where(Rejection.device_id.in_(ids), Rejection.seq.in_(seqs)))}
    return stored, rejected


def _store_events(session: Session, batch: _Batch, known: list) -> None:
    stored, rejected_before = _known_pairs(session, known)
    seen: dict[tuple[int, int], dict | tuple] = {}  # in this batch: the event, () if rejected
    for dev, topic, raw, when, doc, result in known:
        now_s = when.timestamp()
        offset = round(now_s - doc["now"])
        ack = result.ack = batch.acks.setdefault(dev.ident, Ack(dev.ident, dev.acked_seq))
        for ev in doc["events"]:
            seq = checks.event_seq(ev)
            if seq is None:  # cannot be acked; kept as a rejection so that it is visible
                batch.counts["bad_event"] += 1
                batch.rejections.append({
                    "device_ident": dev.ident, "device_id": dev.id, "topic": topic[:255],
                    "seq": None, "reason": "bad_event", "raw": _text(json.dumps(ev).encode()),
                    "created_at": when})
                log.warning("%s: event without a valid seq rejected", dev.ident)
                continue
            key = (dev.id, seq)
            problem = checks.event_problem(ev, now_s)
            known_content = stored.get(key, seen.get(key))
            if key in rejected_before or (problem and (key in stored or key in seen
                                                        or seq <= dev.acked_seq)):
                batch.counts["duplicate"] += 1
                result.duplicates += 1
                continue
            if problem is None and known_content is not None:
                if isinstance(known_content, dict):  # stored earlier in this batch
                    known_content = checks.content(known_content)
                if known_content == checks.content(ev):
                    batch.counts["duplicate"] += 1
                    result.duplicates += 1
                    continue
                problem = "replay"
            elif problem is None and seq <= dev.acked_seq:
                batch.counts["duplicate"] += 1  # stored long ago, nothing to compare with
                result.duplicates += 1
                continue
            if problem:
                batch.counts[problem] += 1
                entry = {"seq": seq, "reason": problem}
                result.rejected.append(entry)
                ack.rejected.append(entry)
                batch.rejections.append({
                    "device_ident": dev.ident, "device_id": dev.id, "topic": topic[:255],
                    "seq": seq, "reason": problem, "raw": _text(json.dumps(ev).encode()),
                    "created_at": when})
                log.info("%s: event %d rejected (%s)", dev.ident, seq, problem)
                if problem != "replay":
                    seen[key] = ()
                continue
            seen[key] = ev
            batch.counts["stored"] += 1
            result.stored += 1
            batch.events.append({
                "device_id": dev.id, "seq": seq, "badge_uid": ev.get("badge"),
                "tag": ev.get("tag"), "dir": ev["dir"], "method": ev["method"],
                "reason": ev.get("reason"),
                "device_ts": datetime.fromtimestamp(ev["ts"], timezone.utc),
                "received_at": when, "time_quality": ev["tq"], "clock_offset_s": offset,
                "pos": ev.get("pos"), "raw": ev, "visit_id": None, "match_status": "pending"})
    bulk.insert_rows(session, ClockEvent.__table__, batch.events,
                     skip_conflicts_on=["device_id", "seq"])


def _beyond_watermark(devs: list[_Dev]) -> TextClause:
    """(device_id, seq) stored or rejected above each device's watermark, read as one index
    range per device. (Joined on devices.acked_seq instead, PostgreSQL reads every event the
    device ever sent, at every batch.) The ids and seqs are ints, written into the SQL."""
    ranges = " OR ".join(f"(device_id = {int(d.id)} AND seq > {int(d.acked_seq)})"
                         for d in devs)
    return text(f"SELECT device_id, seq FROM clock_events WHERE {ranges} "
                f"UNION ALL SELECT device_id, seq FROM rejections WHERE {ranges}")


def _advance_acks(session: Session, batch: _Batch, known: list) -> None:
    """Ack = highest seq such that 1..seq are all stored (accepted or rejected)."""
    devs = {k[0].ident: k[0] for k in known}
    latest: dict[int, tuple[datetime, int]] = {}
    for dev, _t, _r, when, doc, _res in known:
        if dev.id not in latest or when >= latest[dev.id][0]:
            latest[dev.id] = (when, round(when.timestamp() - doc["now"]))
    beyond: dict[int, set[int]] = defaultdict(set)
    ranges = list(devs.values())
    for i in range(0, len(ranges), _RANGES_PER_QUERY):  # SQLite caps an expression's depth
        for device_id, seq in session.execute(_beyond_watermark(
                ranges[i:i + _RANGES_PER_QUERY])):
            beyond[device_id].add(seq)
    params = []
    for ident, dev in devs.items():
        ack, have = dev.acked_seq, beyond.get(dev.id, set())
        while ack + 1 in have:
            ack += 1
        if have and max(have) > ack:
            batch.counts["seq_gap"] += 1
            log.info("%s: gap after seq %d (highest stored %d)", ident, ack, max(have))
        batch.acks[ident].ack = ack
        when, offset = latest[dev.id]
        params.append({"b_id": dev.id, "b_ack": ack, "b_seen": when, "b_off": offset})
    t = Device.__table__
    session.execute(
        update(t).where(t.c.id == bindparam("b_id")).values(
            acked_seq=case((t.c.acked_seq < bindparam("b_ack"), bindparam("b_ack")),
                           else_=t.c.acked_seq),
            last_seen=bindparam("b_seen"), clock_offset_s=bindparam("b_off")),
        sorted(params, key=_by_device))


def _by_device(row: dict) -> int:
    """Devices rows are updated in id order: two workers whose batches share devices then
    lock them in the same order and wait for each other instead of deadlocking (PostgreSQL
    found deadlocks at 800 health reports a second over two workers)."""
    return row["b_id"]


def _store_health(session: Session, batch: _Batch, devices: dict[str, _Dev],
                  healths: list[tuple[str, bytes, datetime]]) -> None:
    latest: dict[int, dict] = {}
    for ident, raw, when in healths:
        dev = devices.get(ident)
        if dev is None:
            batch.counts["unknown_device"] += 1
            log.warning("%s: health from an unknown device dropped", ident)
            continue
        try:
            doc = json.loads(raw) if len(raw) <= checks.MAX_PAYLOAD else None
        except (ValueError, UnicodeDecodeError):
            doc = None
        if not checks.health_ok(doc):
            batch.counts["bad_health"] += 1
            log.warning("%s: malformed health report dropped", ident)
            continue
        batch.counts["health"] += 1
        if dev.id not in latest or when >= latest[dev.id]["b_seen"]:
            latest[dev.id] = {"b_id": dev.id, "b_seen": when, "b_health": doc,
                              "b_off": round(when.timestamp() - doc["now"]),
                              "b_fw": doc["fw"]}
    if latest:
        t = Device.__table__
        session.execute(
            update(t).where(t.c.id == bindparam("b_id")).values(
                last_seen=bindparam("b_seen"), health=bindparam("b_health"),
                clock_offset_s=bindparam("b_off"), fw_version=bindparam("b_fw")),
            sorted(latest.values(), key=_by_device))
        reports = [alerts.HealthReport(r["b_id"], r["b_health"], r["b_off"], r["b_seen"])
                   for r in latest.values()]
        batch.counts.update(alerts.on_health(session, reports, datetime.now(timezone.utc)))


def _store_states(session: Session, batch: _Batch, devices: dict[str, _Dev],
                  states: list[tuple[str, bytes, datetime]]) -> None:
    """The last will topic: `online` / `offline` (plain text), the latest per device."""
    latest: dict[int, tuple[str, datetime]] = {}
    for ident, raw, when in states:
        dev = devices.get(ident)
        state = raw.strip().decode("ascii", errors="replace").lower()
        if dev is None or state not in ("online", "offline"):
            batch.counts["bad_state" if dev else "unknown_device"] += 1
            continue
        if dev.id not in latest or when >= latest[dev.id][1]:
            latest[dev.id] = (state, when)
    batch.counts.update(alerts.on_state(session, latest, datetime.now(timezone.utc)))


def _save_counts(session: Session, source: str, counts: Counter) -> None:
    rows = [{"source": source[:64], "name": k, "count": v} for k, v in counts.items() if v]
    if not rows:
        return
    stmt = _insert(session, IngestCounter.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source", "name"],
        set_={"count": IngestCounter.__table__.c.count + stmt.excluded.count})
    session.execute(stmt, rows)


def ingest_stats(session: Session, organisation_id: int | None = None) -> dict:
    """Totals of every counter (all sources) and rejections stored per reason. For one
    organisation: its devices' stored events and rejections only (the workers' counters mix
    every agency, so they are the fleet operator's alone)."""
    from sqlalchemy import func
    if organisation_id is not None:
        mine = select(Device.id).where(Device.organisation_id == organisation_id)
        stored = session.scalar(select(func.count()).select_from(ClockEvent).where(
            ClockEvent.device_id.in_(mine)))
        rejections = dict(session.execute(
            select(Rejection.reason, func.count()).where(Rejection.device_id.in_(mine))
            .group_by(Rejection.reason)).all())
        return {"counters": {"stored": stored}, "rejections": rejections,
                "organisation_id": organisation_id}
    counters: Counter = Counter()
    for name, count in session.execute(select(IngestCounter.name, IngestCounter.count)):
        counters[name] += count
    rejections = dict(session.execute(
        select(Rejection.reason, func.count()).group_by(Rejection.reason)).all())
    return {"counters": dict(sorted(counters.items())), "rejections": rejections}
