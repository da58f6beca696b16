"""fleet.ingest: every rejection reason, idempotence, the ack rule, batches."""
from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import func, select

from fleet.ingest import handle_clock, handle_health, ingest_batch, ingest_stats
from fleet.models import ClockEvent, Device, Rejection

from .conftest import NOW, TS  # noqa: F401  (importlib mode keeps package-relative imports)


def seqs(session, ident="r1"):
    return list(session.scalars(select(ClockEvent.seq).join(Device)
                                .where(Device.ident == ident).order_by(ClockEvent.seq)))


def reasons(session):
    return sorted((r.seq, r.reason) for r in session.scalars(select(Rejection)))


def nul_does_not_poison_the_batch(session, good: str, bad: str) -> None:
    """A NUL in a string (PostgreSQL's text refuses it) is that event's or message's problem
    only: the rest of the batch is stored and acked, the bad parts are rejected and kept."""
    ev = {"seq": 1, "badge": "04A1B2C3D4E5F6", "dir": "in", "method": "nfc", "ts": TS,
          "tq": "synced"}
    bad_events = [dict(ev, seq=1, tag="C1\x00"), dict(ev, seq=2, method="manual",
                                                      reason="lost\x00"), dict(ev, seq=3)]
    health = {"now": TS, "fw": "1.0\x00", "up": 1, "heap": 1, "jd": 0, "jfull": False,
              "rd": "ok", "tq": "synced"}
    acks = ingest_batch(session, [
        (f"tg/v1/{bad}/up/clock", json.dumps({"now": TS, "events": bad_events}).encode(), NOW),
        (f"tg/v1/{bad}/up/clock", b'{"now": 1, "events": [\x00]}', NOW),
        (f"tg/v1/{bad}/up/health", json.dumps(health).encode(), NOW),
        (f"tg/v1/{good}/up/clock", json.dumps({"now": TS, "events": [ev]}).encode(), NOW)])
    session.commit()
    assert {a.device: a.ack for a in acks} == {good: 1, bad: 3}
    assert seqs(session, good) == [1] and seqs(session, bad) == [3]
    rejected = {(r.seq, r.reason): r.raw for r in session.scalars(
        select(Rejection).where(Rejection.device_ident == bad))}
    assert set(rejected) == {(None, "malformed_json"), (1, "bad_event"), (2, "bad_event")}
    kept = rejected[(None, "malformed_json")]
    assert "\ufffd" in kept and "\x00" not in kept
    assert session.scalar(select(Device.fw_version).where(Device.ident == bad)) is None


def test_nul_in_a_string_is_rejected_alone(session, agency):
    nul_does_not_poison_the_batch(session, "r1", "r2")


def test_good_batch_is_stored_and_acked(session, agency, clock, event):
    res = handle_clock(session, "r1", clock(event(1), event(2, dir="out")), NOW)
    session.commit()
    assert res.refused is None and res.stored == 2
    assert json.loads(res.ack.payload) == {"ack": 2, "rejected": []}
    assert res.ack.topic == "tg/v1/r1/down/ack"
    assert seqs(session) == [1, 2]
    ev = session.scalars(select(ClockEvent).where(ClockEvent.seq == 1)).one()
    assert ev.device_ts == NOW and ev.device_ts.tzinfo is not None
    assert ev.match_status == "pending" and ev.raw["badge"] == "04A1B2C3D4E5F6"


def test_resend_is_a_noop_with_the_same_ack(session, agency, clock, event):
    payload = clock(event(1), event(2))
    first = handle_clock(session, "r1", payload, NOW)
    again = handle_clock(session, "r1", payload, NOW)
    session.commit()
    assert (first.stored, again.stored, again.duplicates) == (2, 0, 2)
    assert again.ack.ack == 2
    assert seqs(session) == [1, 2]


def test_gap_holds_the_ack_until_filled(session, agency, clock, event):
    counters = Counter()
    acks = ingest_batch(session, [("tg/v1/r1/up/clock", clock(event(1), event(3)), NOW)],
                        counters=counters)
    assert acks[0].ack == 1 and counters["seq_gap"] == 1
    acks = ingest_batch(session, [("tg/v1/r1/up/clock", clock(event(4)), NOW)])
    assert acks[0].ack == 1
    acks = ingest_batch(session, [("tg/v1/r1/up/clock", clock(event(2)), NOW)])
    assert acks[0].ack == 4
    assert session.scalar(select(Device.acked_seq).where(Device.ident == "r1")) == 4


def test_rejected_events_count_as_stored_for_the_ack(session, agency, clock, event):
    payload = clock(event(1), event(2, ts=TS + 2 * 86400), event(3, ts=TS - 31 * 86400),
                    event(4, dir="sideways"), event(5))
    res = handle_clock(session, "r1", payload, NOW)
    assert res.ack.ack == 5 and res.stored == 2
    assert res.ack.rejected == [{"seq": 2, "reason": "ts_future"},
                                {"seq": 3, "reason": "ts_past"},
                                {"seq": 4, "reason": "bad_event"}]
    assert seqs(session) == [1, 5]
    assert reasons(session) == [(2, "ts_future"), (3, "ts_past"), (4, "bad_event")]
    again = handle_clock(session, "r1", payload, NOW)  # resend: nothing new anywhere
    assert again.ack.ack == 5 and again.duplicates == 5
    assert len(reasons(session)) == 3


def test_every_bad_event_shape(session, agency, clock, event):
    bad = [
        {"seq": 1, "dir": "in", "method": "nfc", "ts": TS, "tq": "synced"},  # no badge nor tag
        event(2, badge="04a1b2c3"),           # lower case
        event(3, badge="04A1"),               # too short
        event(4, method="manual"),            # manual without reason
        event(5, method="pigeon"),
        event(6, ts="soon"),
        event(7, tq="sundial"),
        event(8, visit="12"),
        event(9, pos=[48.8, 2.3]),
        event(10, reason="x" * 121),
        event(11, tag=""),
    ]
    ok = [event(12, method="manual", reason="tag unreadable", tag="C12-7F3A", badge=None),
          event(13, pos=[48.85, 2.35, 12], visit=7, extra_key="ignored")]
    ok[0].pop("badge")
    for i in range(0, len(bad), 8):
        handle_clock(session, "r1", clock(*bad[i:i + 8]), NOW)
    res = handle_clock(session, "r1", clock(*ok), NOW)
    assert res.stored == 2 and res.ack.ack == 13
    assert [r for r in reasons(session)] == [(i, "bad_event") for i in range(1, 12)]


def test_event_without_a_valid_seq_is_kept_but_cannot_be_acked(session, agency, clock, event):
    counters = Counter()
    acks = ingest_batch(session, [("tg/v1/r1/up/clock",
                                   clock(event(0), event(True), "junk", event(1)), NOW)],
                        counters=counters)
    session.commit()
    assert acks[0].ack == 1 and counters["bad_event"] == 3
    assert reasons(session) == [(None, "bad_event")] * 3  # visible, with what was sent


def test_replay_is_rejected_and_the_first_event_kept(session, agency, clock, event):
    handle_clock(session, "r1", clock(event(1, dir="in")), NOW)
    res = handle_clock(session, "r1", clock(event(1, dir="out")), NOW)
    assert res.rejected == [{"seq": 1, "reason": "replay"}] and res.ack.ack == 1
    assert session.scalar(select(ClockEvent.dir)) == "in"


def test_replay_inside_one_batch(session, agency, clock, event):
    res = handle_clock(session, "r1", clock(event(1), event(1, dir="out")), NOW)
    assert res.stored == 1 and res.rejected == [{"seq": 1, "reason": "replay"}]


def test_message_level_refusals_store_nothing_and_ack_nothing(session, agency, clock, event):
    counters = Counter()
    big = json.dumps({"now": TS, "events": [event(1, reason="x" * 120)] * 8}).encode()
    messages = [
        ("tg/v1/r1/up/clock", big, NOW),
        ("tg/v1/r1/up/clock", b"{not json", NOW),
        ("tg/v1/r1/up/clock", b"\xff\xfe", NOW),
        ("tg/v1/r1/up/clock", b"[]", NOW),
        ("tg/v1/r1/up/clock", json.dumps({"now": TS, "events": []}).encode(), NOW),
        ("tg/v1/r1/up/clock", json.dumps({"events": [event(1)]}).encode(), NOW),
        ("tg/v1/r1/up/clock", json.dumps({"now": TS, "events": [{}] * 17}).encode(), NOW),
        ("tg/v1/ghost/up/clock", clock(event(1)), NOW),
    ]
    assert ingest_batch(session, messages, counters=counters) == []
    assert counters == Counter(oversized=1, malformed_json=2, bad_batch=4, unknown_device=1)
    assert session.scalar(select(func.count()).select_from(ClockEvent)) == 0
    rows = session.scalars(select(Rejection).order_by(Rejection.id)).all()
    assert [r.reason for r in rows][:2] == ["oversized", "malformed_json"]
    assert all(len(r.raw) <= 1024 and r.seq is None for r in rows)
    assert rows[-1].device_ident == "ghost"


def test_good_events_kept_beside_bad_messages_in_one_batch(session, agency, clock, event):
    acks = ingest_batch(session, [
        ("tg/v1/r1/up/clock", b"garbage", NOW),
        ("tg/v1/r1/up/clock", clock(event(1)), NOW),
        ("tg/v1/r2/up/clock", clock(event(1), event(2)), NOW),
        ("tg/v1/r1/up/clock", clock(event(2), event(3)), NOW),
    ])
    assert {a.device: a.ack for a in acks} == {"r1": 3, "r2": 2}


def test_big_batch_of_many_devices(session, agency, clock, event):
    from fleet.models import Device as D

    org_id = agency["org"].id
    session.add_all([D(ident=f"bulk{i}", kind="reader", organisation_id=org_id)
                     for i in range(200)])
    session.commit()
    messages = [(f"tg/v1/bulk{i}/up/clock", clock(*[event(s) for s in range(k * 8 + 1,
                                                                           k * 8 + 9)]), NOW)
                for k in range(3) for i in range(200)]
    counters = Counter()
    acks = ingest_batch(session, messages, counters=counters)
    session.commit()
    assert counters["stored"] == 4800 and len(acks) == 200
    assert {a.ack for a in acks} == {24}
    assert session.scalar(select(func.count()).select_from(ClockEvent)) == 4800


def test_ack_survives_a_lost_commit(engine, agency, clock, event):
    """Nothing committed, nothing acked: the device's resend is stored afresh."""
    from fleet.db import session_factory

    S = session_factory(engine)
    with S() as s:
        ingest_batch(s, [("tg/v1/r1/up/clock", clock(event(1)), NOW)])
        s.rollback()
    with S() as s:
        acks = ingest_batch(s, [("tg/v1/r1/up/clock", clock(event(1)), NOW)])
        s.commit()
        assert acks[0].ack == 1 and seqs(s) == [1]


def test_health_is_stored_with_the_clock_offset(session, agency):
    report = {"now": TS - 7, "fw": "0.1.0", "up": 3600, "heap": 41234, "rssi": -61, "bat": 87,
              "jd": 3, "jfull": False, "rd": "ok", "tq": "synced", "off": 0}
    assert handle_health(session, "r1", json.dumps(report).encode(), NOW)
    dev = session.scalars(select(Device).where(Device.ident == "r1")).one()
    session.refresh(dev)
    assert dev.health["heap"] == 41234 and dev.clock_offset_s == 7
    assert dev.fw_version == "0.1.0" and dev.last_seen == NOW
    assert not handle_health(session, "r1", b'{"now": 1}', NOW)
    assert not handle_health(session, "r1", b"nope", NOW)
    assert not handle_health(session, "ghost", json.dumps(report).encode(), NOW)
    stats = ingest_stats(session)["counters"]
    assert stats["health"] == 1 and stats["bad_health"] == 2 and stats["unknown_device"] == 1


def test_clock_updates_last_seen_and_offset(session, agency, clock, event):
    handle_clock(session, "r1", clock(event(1), now=TS - 400), NOW)
    dev = session.scalars(select(Device).where(Device.ident == "r1")).one()
    session.refresh(dev)
    assert dev.clock_offset_s == 400 and dev.last_seen == NOW
    assert session.scalar(select(ClockEvent.clock_offset_s)) == 400


def test_counters_are_persisted_per_source(session, agency, clock, event):
    ingest_batch(session, [("tg/v1/r1/up/clock", clock(event(1)), NOW)], source="w1")
    ingest_batch(session, [("tg/v1/r1/up/clock", clock(event(1), event(2)), NOW)], source="w2")
    ingest_batch(session, [("tg/v1/r9/up/clock", clock(event(1)), NOW)], source="w2")
    stats = ingest_stats(session)
    assert stats["counters"] == {"stored": 2, "duplicate": 1, "unknown_device": 1}
    assert stats["rejections"] == {"unknown_device": 1}
