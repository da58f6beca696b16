"""Matching of stored clock events to the planning (docs/protocol.md, "Matching").

Works on the events still `pending`, in device-time order, a batch at a time with a few queries
(badges, visits, records and recent events are loaded once per batch). Every event leaves
`pending` exactly once, so running it twice changes nothing.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from fleet import bulk, clock_flags, presence, sun, sun_tags, tagtokens, webhooks
from fleet.models import (Anomaly, AuditLog, Badge, ClockEvent, Device, Organisation, Visit,
                          VisitRecord)
from fleet.retained import retained_period
from fleet.types import utcnow

log = logging.getLogger("telegest.matching")

DOUBLE_TAP = timedelta(seconds=10)
CLOCK_OFF_S = 300


@dataclass
class _Event:
    id: int
    device_id: int
    org_id: int
    kind: str
    client_id: int | None
    caregiver_id: int | None
    badge: str | None
    tag: str | None
    dir: str
    ts: datetime
    tq: str
    offset: int
    chosen: int | None  # the visit the device chose (the event's optional `visit`)
    method: str
    pos: list[float] | None
    received: datetime | None = None  # when the fleet received it (fleet.clock_flags)
    refused: tuple[str, str] | None = None  # (anomaly, detail): a revoked or forged badge
    warning: tuple[str, str] | None = None  # (anomaly, detail): flagged, matched all the same
    proof: str | None = None  # "sun" (a verified NTAG 424 read) or "static"
    level: str | None = None  # fleet.presence.LEVELS
    far: str | None = None  # the far_from_home detail


def match_pending(session: Session, limit: int = 5000) -> Counter:
    """Match up to `limit` pending events; the caller commits. Returns counts per outcome."""
    stmt = (select(ClockEvent.id, ClockEvent.device_id, Device.organisation_id, Device.kind,
                   Device.client_id, Device.caregiver_id, ClockEvent.badge_uid,
                   ClockEvent.tag, ClockEvent.dir, ClockEvent.device_ts,
                   ClockEvent.time_quality, ClockEvent.clock_offset_s,
                   ClockEvent.raw["visit"].as_integer(), ClockEvent.method, ClockEvent.pos,
                   ClockEvent.received_at)
            .join(Device, Device.id == ClockEvent.device_id)
            .where(ClockEvent.match_status == "pending")
            .order_by(ClockEvent.device_ts, ClockEvent.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=ClockEvent, skip_locked=True)
    events = [_Event(*row) for row in session.execute(stmt)]
    if not events:
        return Counter()
    return _Matcher(session, events).run()


def _inline(ids: list[int]):
    """Integer ids written into the SQL: thousands of bound parameters cost more to send
    than the statement itself."""
    return bindparam("ids", ids, expanding=True, literal_execute=True)


def _tap_id(badge: str | None, tag: str | None) -> str | None:
    """What a double tap repeats: the card, the tag's text, or a SUN tag's reference (its URL
    changes at every read)."""
    if badge or not sun.looks_sun(tag):
        return badge or tag
    read = sun.parse_url(tag or "")
    return f"sun:{read.kind}:{read.ref}" if isinstance(read, sun.SunRead) else tag


class _Matcher:
    def __init__(self, session: Session, events: list[_Event]) -> None:
        self.s = session
        self.events = events
        self.counts: Counter = Counter()
        self.done: dict[tuple[str, int | None], list[int]] = defaultdict(list)
        self.anomalies: list[dict] = []
        self.orgs = {o.id: o for o in session.scalars(
            select(Organisation).where(Organisation.id.in_({e.org_id for e in events})))}
        self._load_badges()
        self.sun = sun_tags.Verifier(session, self.orgs, [(e.org_id, e.tag) for e in events
                                                          if sun.looks_sun(e.tag)])
        for e in events:
            self._resolve(e)
        self._claimed_clients()
        self._presence()
        self._load_visits()
        self._load_recent()
        self._load_blocks()
        self.links = clock_flags.load_links(session, {e.device_id for e in events})

    def _claimed_clients(self) -> None:
        """A phone's manual clock-in names no tag (the phone holds none): the client is that
        of the visit it chose, when the visit is this caregiver's."""
        claims = [e for e in self.events if e.kind == "phone" and e.method == "manual"
                  and not e.tag and e.chosen and e.client_id is None and not e.refused]
        if not claims:
            return
        owners = {v.id: (v.organisation_id, v.caregiver_id, v.client_id) for v in self.s.scalars(
            select(Visit).where(Visit.id.in_({e.chosen for e in claims})))}
        for e in claims:
            org, carer, client = owners.get(e.chosen, (None, None, None))
            if org == e.org_id and carer is not None and carer == e.caregiver_id:
                e.client_id = client

    def _presence(self) -> None:
        """Each event's proof level, and far_from_home when its position says so."""
        homes = presence.reference_points(
            self.s, {e.client_id for e in self.events if e.client_id and e.pos},
            max(e.ts for e in self.events))
        radius = {o: presence.radius_of(self.s, o) for o in self.orgs}
        for e in self.events:
            home = homes.get(e.client_id) if e.client_id else None
            nearness, d = presence.where(e.pos, home, radius[e.org_id])
            e.level = presence.proof_level(e.proof, e.kind, e.refused is not None, nearness)
            if nearness == "far" and e.pos:
                e.far = (f"{d:.0f} m from the home (accuracy {e.pos[2]:.0f} m, radius "
                         f"{radius[e.org_id]} m) · à {d:.0f} m du domicile")

    def _load_blocks(self) -> None:
        """The periods each device spent declared lost (from the audit log's block and unblock
        entries): its events from then, sent after an unblock, are flagged `during_block`."""
        idents = dict(self.s.execute(select(Device.id, Device.ident).where(
            Device.id.in_({e.device_id for e in self.events}))).all())
        targets = {f"device:{ident}": dev_id for dev_id, ident in idents.items()}
        self.blocks: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
        rows = self.s.execute(select(AuditLog.target, AuditLog.action, AuditLog.at).where(
            AuditLog.target.in_(list(targets)), AuditLog.action.in_(("block", "unblock")))
            .order_by(AuditLog.at, AuditLog.id))
        for target, action, at in rows:
            periods = self.blocks[targets[target]]
            if action == "block" and (not periods or periods[-1][1] is not None):
                periods.append((at, None))
            elif action == "unblock" and periods and periods[-1][1] is None:
                periods[-1] = (periods[-1][0], at)

    def _blocked_at(self, e: _Event) -> tuple[datetime, datetime | None] | None:
        for start, end in self.blocks.get(e.device_id, ()):
            if start <= e.ts and (end is None or e.ts < end):
                return start, end
        return None

    def _load_badges(self) -> None:
        """Every badge the events name, revoked ones too: a revoked badge is told apart."""
        uids = {e.badge for e in self.events if e.badge}
        tags = {e.tag for e in self.events if e.tag}
        rows = list(self.s.scalars(select(Badge).where(or_(
            (Badge.kind == "caregiver_card") & Badge.uid.in_(uids),
            (Badge.kind == "client_tag") & Badge.uid.in_(tags)))))
        self.cards = {(b.organisation_id, b.uid): b for b in rows if b.kind == "caregiver_card"}
        self.tags = {(b.organisation_id, b.uid): b for b in rows if b.kind == "client_tag"}

    def _resolve(self, e: _Event) -> None:
        """Who and where: a reader knows its home, a phone knows its caregiver."""
        if sun.looks_sun(e.tag):
            return self._resolve_sun(e)
        card = self._owner(e, self.cards.get((e.org_id, e.badge)), "card", e.badge)
        e.proof = "static" if card else None
        if e.kind == "reader":
            e.caregiver_id = card
            return
        e.caregiver_id = e.caregiver_id or card
        if e.tag:
            row = self.tags.get((e.org_id, e.tag))
            e.client_id = self._owner(e, row, "tag", e.tag)
            e.proof = "static" if e.client_id else e.proof
            if row is None and tagtokens.looks_signed(e.tag):
                self._check_token(e)

    def _resolve_sun(self, e: _Event) -> None:
        """A SUN read (a phone's client tag, a reader's caregiver card): the tag it proves,
        whatever UID the event's `badge` claims."""
        v = self.sun.check(e.org_id, e.tag or "")
        if v.refused:
            e.refused = v.refused
            return
        assert v.badge is not None
        e.warning = v.warning
        owner = self._owner(e, v.badge, "tag" if v.badge.kind == "client_tag" else "card",
                            v.badge.sun_uid)
        if owner is not None:
            e.proof = "sun"
        if v.badge.kind == "caregiver_card":
            e.caregiver_id = owner
        elif e.kind == "phone":
            e.client_id = owner
        else:  # a client's tag on a reader box: the box knows its home, not who tapped
            e.refused = ("unknown_badge", f"NTAG 424 {v.badge.sun_uid} is a client tag, "
                                          "read by a reader box: it needs a caregiver card")

    @staticmethod
    def _owner(e: _Event, b: Badge | None, what: str, uid: str | None) -> int | None:
        if b is None:
            return None
        if not b.active:
            when = b.revoked_at.strftime("%Y-%m-%d %H:%M UTC") if b.revoked_at else "?"
            e.refused = ("revoked_badge", f"{what} {uid} (badge {b.id}) revoked on {when}: "
                                          f"{b.revoke_reason or 'no reason given'}")
            return None
        return b.caregiver_id if b.kind == "caregiver_card" else b.client_id

    def _check_token(self, e: _Event) -> None:
        """A TG1 token the fleet does not hold: forged, or another organisation's."""
        token = tagtokens.parse(e.tag)
        if token is not None and token.organisation_id != e.org_id:
            e.refused = ("unknown_badge", f"tag {e.tag!r} belongs to organisation "
                                          f"{token.organisation_id}, not this one")
            return
        wrong = tagtokens.verify(self.orgs[e.org_id].tag_secret, e.org_id, e.tag)
        e.refused = ("forged_tag" if wrong else "unknown_badge",
                     f"tag {e.tag!r}: {wrong or 'signed here but not registered (restored backup?)'}")

    def _load_visits(self) -> None:
        pairs = {(e.client_id, e.caregiver_id) for e in self.events
                 if e.client_id and e.caregiver_id}
        self.visits: dict[tuple[int, int], list[Visit]] = {p: [] for p in pairs}
        self.records: dict[int, VisitRecord] = {}
        if not pairs:
            return
        lo = min(e.ts for e in self.events) - timedelta(days=1)
        hi = max(e.ts for e in self.events) + timedelta(days=1)
        near = (Visit.client_id.in_({p[0] for p in pairs})
                & Visit.caregiver_id.in_({p[1] for p in pairs})
                & Visit.planned_start.between(lo, hi))
        chosen = {e.chosen for e in self.events if e.chosen}
        if chosen:  # a chosen visit may lie outside the window
            near = near | Visit.id.in_(chosen)
        for v in self.s.scalars(select(Visit).where(near, Visit.status != "cancelled")):
            if (v.client_id, v.caregiver_id) in self.visits:
                self.visits[(v.client_id, v.caregiver_id)].append(v)
        ids = [v.id for vs in self.visits.values() for v in vs]
        if ids:
            self.records = {r.visit_id: r for r in self.s.scalars(
                select(VisitRecord).where(VisitRecord.visit_id.in_(ids)))}

    def _load_recent(self) -> None:
        """Last processed tap per (device, badge or tag, dir), for double-tap detection."""
        lo = min(e.ts for e in self.events) - DOUBLE_TAP
        self.last_tap: dict[tuple, datetime] = {}
        rows = self.s.execute(select(ClockEvent.device_id, ClockEvent.badge_uid, ClockEvent.tag,
                                     ClockEvent.dir, ClockEvent.device_ts).where(
            ClockEvent.device_id.in_({e.device_id for e in self.events}),
            ClockEvent.device_ts >= lo, ClockEvent.match_status != "pending"))
        for r in rows:
            self._remember((r.device_id, _tap_id(r.badge_uid, r.tag), r.dir), r.device_ts)

    def _remember(self, key: tuple, ts: datetime) -> None:
        if key not in self.last_tap or ts > self.last_tap[key]:
            self.last_tap[key] = ts

    def run(self) -> Counter:
        for e in self.events:
            self._match(e)
        # one UPDATE per outcome (and per visit for matched events), not one per event
        for (status, visit_id), ids in self.done.items():
            self.s.execute(update(ClockEvent).where(ClockEvent.id.in_(_inline(ids)))
                           .values(match_status=status, visit_id=visit_id))
        for column, attr in (("tag_proof", "proof"), ("proof_level", "level")):
            by_value: dict[str, list[int]] = defaultdict(list)
            for e in self.events:
                if getattr(e, attr):
                    by_value[getattr(e, attr)].append(e.id)
            for value, ids in by_value.items():
                self.s.execute(update(ClockEvent).where(ClockEvent.id.in_(_inline(ids)))
                               .values({column: value}))
        clock_flags.attach_visits(self.anomalies, self.done)
        if self.anomalies:  # in one statement, not one INSERT per ORM object
            now = utcnow()
            bulk.insert_rows(self.s, Anomaly.__table__,
                             [{**a, "created_at": now, "resolved": False} for a in self.anomalies])
        self.s.flush()
        listening = webhooks.listening(self.s, self.orgs)
        if listening:
            webhooks.emit_many(self.s, self._hooks(listening))
        return self.counts

    def _hooks(self, orgs: set[int]) -> list[tuple[int, str, dict]]:
        """clock.in / clock.out per event (a double tap ignored is none) and anomaly per flag,
        in the order matched; ids only, no card or tag (docs/integrations.md)."""
        outcome = {i: key for key, ids in self.done.items() for i in ids}
        flags: dict[int, list[dict]] = defaultdict(list)
        for a in self.anomalies:
            flags[a["clock_event_id"]].append(a)
        items = []
        for e in self.events:
            if e.org_id not in orgs:
                continue
            status, visit_id = outcome.get(e.id, ("pending", None))
            if status != "ignored" and e.dir in ("in", "out"):
                items.append((e.org_id, f"clock.{e.dir}", {
                    "clock_event_id": e.id, "device_id": e.device_id, "time": e.ts,
                    "method": e.method, "visit_id": visit_id, "match_status": status,
                    "client_id": e.client_id, "caregiver_id": e.caregiver_id,
                    "proof_level": e.level}))
            items += [(e.org_id, "anomaly", {
                "kind": a["kind"], "clock_event_id": e.id, "device_id": e.device_id,
                "visit_id": a["visit_id"]}) for a in flags[e.id]]
        return items

    def _flag(self, e: _Event, kind: str, detail: str, visit_id: int | None = None) -> None:
        self.counts[kind] += 1
        self.anomalies.append({"kind": kind, "organisation_id": e.org_id,
                               "device_id": e.device_id, "clock_event_id": e.id,
                               "visit_id": visit_id, "detail": detail})
        # the detail names cards and tags: kept in the anomaly, never in the logs
        log.debug("device %d event %d: %s", e.device_id, e.id, kind)

    def _done(self, e: _Event, status: str, visit_id: int | None = None) -> None:
        if e.far and status != "ignored":  # with its visit, so that the visit's page shows it
            self._flag(e, "far_from_home", e.far, visit_id)
        self.counts[status] += 1
        self.done[(status, visit_id)].append(e.id)

    def _match(self, e: _Event) -> None:
        if abs(e.offset) > CLOCK_OFF_S or e.tq == "unsynced":
            self._flag(e, "clock_off", f"clock offset {e.offset}s, time quality {e.tq}")
        far = clock_flags.clock_far(e.ts, e.offset, e.received, self.links.get(e.device_id))
        if far:
            self._flag(e, "clock_far", far)
        blocked = self._blocked_at(e)
        if blocked:
            until = blocked[1].strftime("%Y-%m-%d %H:%M UTC") if blocked[1] else "now"
            self._flag(e, "during_block", "taken while the device was declared lost or stolen "
                       f"({blocked[0]:%Y-%m-%d %H:%M UTC} to {until})")
        key = (e.device_id, _tap_id(e.badge, e.tag), e.dir)
        last = self.last_tap.get(key)
        self._remember(key, e.ts)
        if last is not None and abs(e.ts - last) <= DOUBLE_TAP:
            self._flag(e, "double_tap", f"same {e.dir} within {DOUBLE_TAP.seconds}s")
            return self._done(e, "ignored")
        if e.refused:
            self._flag(e, *e.refused)
            return self._done(e, "anomaly")
        if e.warning:  # a genuine read with reads missing before it: matched, and flagged
            self._flag(e, *e.warning)
        if not (e.client_id and e.caregiver_id):
            self._flag(e, "unknown_badge", f"badge {e.badge!r} tag {e.tag!r} not known here")
            return self._done(e, "anomaly")
        org = self.orgs[e.org_id]
        visits = self.visits[(e.client_id, e.caregiver_id)]
        if e.dir == "in":
            return self._arrive(e, org, visits)
        return self._leave(e, org, visits)

    def _record(self, visit: Visit) -> VisitRecord:
        rec = self.records.get(visit.id)
        if rec is None:
            rec = VisitRecord(visit_id=visit.id, status="in_progress")
            self.s.add(rec)
            self.records[visit.id] = rec
        return rec

    def _chosen(self, e: _Event, visits: list[Visit]) -> Visit | None:
        """The visit the device chose, when it is one of this caregiver's at this client."""
        return next((v for v in visits if v.id == e.chosen), None) if e.chosen else None

    def _locked(self, rec: VisitRecord) -> bool:
        """A corrected or validated record keeps its retained period: later events update
        only the actual (raw) times."""
        return rec.correction_code is not None or rec.validated_at is not None

    def _settle(self, rec: VisitRecord, visit: Visit, org: Organisation, status: str,
                visit_status: str) -> None:
        """Statuses and the retained period follow the events, unless the record is locked:
        a coordinator's correction or validation stands."""
        if not self._locked(rec):
            rec.status, visit.status = status, visit_status
            rec.retained_start, rec.retained_end = retained_period(
                rec.actual_start, rec.actual_end, visit, org)

    def _arrive(self, e: _Event, org: Organisation, visits: list[Visit]) -> None:
        tol = timedelta(minutes=org.tolerance_min)

        def free(v: Visit) -> bool:
            return v.id not in self.records or self.records[v.id].actual_start is None

        visit = self._chosen(e, visits)
        if visit is None or not free(visit):
            on_time = [v for v in visits if abs(v.planned_start - e.ts) <= tol and free(v)]
            # past the tolerance but before the planned end: the caregiver is late, not absent
            late = [v for v in visits if v.planned_start + tol < e.ts < v.planned_end
                    and free(v)]
            if not (on_time or late):
                self._flag(e, "no_planned_visit",
                           f"no visit planned within {org.tolerance_min} min or under way")
                return self._done(e, "anomaly")
            visit = min(on_time or late, key=lambda v: abs(v.planned_start - e.ts))
        rec = self._record(visit)
        rec.actual_start, rec.start_event_id = e.ts, e.id
        # with a departure already there (offline phone, late sync), now complete
        st = "in_progress" if rec.actual_end is None else "done"
        self._settle(rec, visit, org, st, st)
        self._done(e, "matched", visit.id)

    def _leave(self, e: _Event, org: Organisation, visits: list[Visit]) -> None:
        chosen = self._chosen(e, visits)
        if chosen is not None and (chosen.id not in self.records
                                   or self.records[chosen.id].actual_end is None):
            started = [chosen] if chosen.id in self.records and \
                self.records[chosen.id].actual_start is not None else []
            open_ = [chosen]
        else:
            started = [v for v in visits if v.id in self.records
                       and self.records[v.id].actual_start is not None
                       and self.records[v.id].actual_end is None
                       and self.records[v.id].actual_start <= e.ts]
            tol = timedelta(minutes=org.tolerance_min)
            open_ = [v for v in visits if v.planned_start - tol <= e.ts <= v.planned_end + tol
                     and (v.id not in self.records or self.records[v.id].actual_end is None)]
        if started:
            visit = max(started, key=lambda v: self.records[v.id].actual_start)
            rec, st = self.records[visit.id], "done"
        else:
            if not open_:
                self._flag(e, "no_planned_visit", "no visit planned around this departure")
                return self._done(e, "anomaly")
            visit = min(open_, key=lambda v: abs(v.planned_end - e.ts))
            rec, st = self._record(visit), "incomplete"
            self._flag(e, "out_before_in", "departure without an arrival", visit.id)
        rec.actual_end, rec.end_event_id = e.ts, e.id
        self._settle(rec, visit, org, st, "done")
        self._done(e, "matched", visit.id)
