"""Finding "hostile payloads" (issue #14, item 2): numbers past the protocol's bounds are a bad
event or a bad batch, never an integer the database cannot hold or a NaN stored as a position.

Before the bounds, `seq` 2^63 or a `now` of 10^20 reached PostgreSQL's BIGINT and INTEGER
columns and failed the batch (OverflowError), which sent it to the one-message-at-a-time path at
every resend; NaN and 1e308 were stored as positions.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from fleet import checks
from fleet.ingest import ingest_batch
from fleet.models import ClockEvent, Device, Rejection

from .conftest import NOW, TS

GOOD = {"seq": 1, "badge": "04A1B2C3D4E5F6", "dir": "in", "method": "nfc", "ts": TS,
        "tq": "synced"}
HEALTH = {"now": TS, "fw": "1.0", "up": 1, "heap": 1, "jd": 0, "jfull": False, "rd": "ok",
          "tq": "synced"}


def hostile_events() -> list[dict]:
    return [dict(GOOD, seq=2, ts=10**12), dict(GOOD, seq=3, ts=-(10**12)),
            dict(GOOD, seq=4, visit=2**63), dict(GOOD, seq=5, pos=[float("nan"), 2.35, 10]),
            dict(GOOD, seq=6, pos=[48.8, float("inf"), 10]), dict(GOOD, seq=7, pos=[91, 2, 10]),
            dict(GOOD, seq=8, pos=[48.8, 2.35, -1]), dict(GOOD, seq=2**31),
            dict(GOOD, seq=2**63 + 5)]


def check_bounds_hold(session) -> None:
    events = [GOOD] + hostile_events()
    raws = [json.dumps({"now": TS, "events": part}).encode() for part in (events[:5], events[5:])]
    assert b"NaN" in raws[0] and b"Infinity" in raws[1]  # what Python's json lets through
    acks = ingest_batch(session, [
        ("tg/v1/r1/up/clock", raws[0], NOW), ("tg/v1/r1/up/clock", raws[1], NOW),
        ("tg/v1/r2/up/clock", json.dumps({"now": 10**20, "events": [GOOD]}).encode(), NOW),
        ("tg/v1/r2/up/health", json.dumps(dict(HEALTH, off=10**20)).encode(), NOW),
        ("tg/v1/r2/up/health", json.dumps(dict(HEALTH, bat=10**30)).encode(), NOW)])
    session.commit()
    assert {a.device: a.ack for a in acks} == {"r1": 8}
    assert max(len(r) for r in raws) <= checks.MAX_PAYLOAD
    assert list(session.scalars(select(ClockEvent.seq))) == [1]
    got = sorted((r.device_ident, r.seq or 0, r.reason) for r in session.scalars(
        select(Rejection)))
    assert got == sorted([("r1", s, "bad_event") for s in range(2, 9)]
                         + [("r1", 0, "bad_event"), ("r1", 0, "bad_event"),
                            ("r2", 0, "bad_batch")])
    assert session.scalar(select(Device.clock_offset_s).where(Device.ident == "r2")) is None


def test_finding_hostile_payloads_out_of_bounds_numbers_are_bad_events(session, agency):
    check_bounds_hold(session)


@pytest.mark.postgres
def test_finding_hostile_payloads_on_postgres(pg_database_url):
    from fleet.db import make_engine, migrate, session_factory
    from tests.fleet.conftest import agency as _agency  # noqa: F401  (fixture body reused)

    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    try:
        with session_factory(engine)() as session:
            _agency.__wrapped__(session)
            check_bounds_hold(session)
    finally:
        engine.dispose()


@pytest.mark.parametrize("seq, ok", [(0, False), (1, True), (2**31 - 1, True), (2**31, False),
                                     (True, False), (1.0, False)])
def test_seq_bounds(seq, ok):
    assert (checks.event_seq({"seq": seq}) == seq) is ok


@pytest.mark.parametrize("pos, ok", [([90, 180, 0], True), ([-90, -180, 100_000], True),
                                     ([90.0001, 0, 1], False), ([0, 180.5, 1], False),
                                     ([0, 0, 100_001], False), ([0, 0], False),
                                     ([0, 0, True], False), ("0,0,1", False)])
def test_position_bounds(pos, ok):
    assert checks.position_ok(pos) is ok
