"""Finding "tests that catch bugs at the contract's edges" (issue #14, item 12): every limit of
docs/protocol.md pinned on both sides of it, and the firmware's codec and the fleet's checks
agreeing on every one of them (what the box journals, the fleet accepts; what the box refuses
to write, the fleet refuses to store).
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from firmware import codec
from fleet import checks
from fleet.ingest import handle_clock
from fleet.matching import match_pending
from fleet.models import Anomaly

from .conftest import NOW, TS

PROPS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))
HEX = "0123456789ABCDEF"
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=130)


def event(**kw):
    ev = {"seq": 1, "badge": "04A1B2C3D4E5F6", "dir": "in", "method": "nfc", "ts": TS,
          "tq": "synced"}
    ev.update(kw)
    return {k: v for k, v in ev.items() if v is not None}


def fleet_verdict(ev: dict) -> str | None:
    if checks.event_seq(ev) is None:
        return "no seq"
    return checks.event_problem(ev, TS)


def codec_verdict(kw: dict) -> str | None:
    try:
        raw = codec.encode_event(**kw)
    except codec.CodecError as e:
        return str(e)
    return fleet_verdict(json.loads(codec.with_seq(1, raw)))


@PROPS
@given(dir=st.sampled_from(["in", "out", "IN", ""]),
       method=st.sampled_from(["nfc", "qr", "manual", "NFC"]),
       tq=st.sampled_from(["synced", "rtc", "unsynced", "ntp"]),
       badge=st.none() | st.text(HEX + "abcg", max_size=22),
       tag=st.none() | text, reason=st.none() | text,
       ts=st.integers(TS - 40 * 86400, TS + 2 * 86400),
       visit=st.none() | st.integers(-5, 2**32))
@example(dir="in", method="nfc", tq="synced", badge="04A1B2C3D4E5F6", tag=None, reason=None,
         ts=TS, visit=0)
@example(dir="in", method="qr", tq="rtc", badge=None, tag="C1\x00", reason=None, ts=TS,
         visit=None)
@example(dir="out", method="manual", tq="rtc", badge=None, tag="C1", reason="lost\x00",
         ts=TS, visit=2**31)
def test_the_codec_and_the_fleet_agree_on_every_event(dir, method, tq, badge, tag, reason, ts,
                                                       visit):
    kw = dict(dir=dir, method=method, ts=ts, tq=tq, badge=badge, tag=tag, reason=reason,
              visit=visit)
    try:
        raw = codec.encode_event(**kw)
    except codec.CodecError:
        # what the box refuses to write, the fleet refuses to store (times aside: a box writes
        # what its clock says and the fleet judges it)
        ev = event(dir=dir, method=method, tq=tq, badge=badge, tag=tag, reason=reason,
                   visit=visit)
        if badge is None:
            ev.pop("badge", None)
        assert fleet_verdict(ev) == "bad_event", kw
        return
    verdict = fleet_verdict(json.loads(codec.with_seq(1, raw)))
    expected = ("ts_future" if ts > TS + checks.FUTURE_S
                else "ts_past" if ts < TS - checks.PAST_S else None)
    assert verdict == expected, (kw, verdict)


@PROPS
@given(n=st.integers(1, 40), tag=st.text(min_size=1, max_size=64).filter(
    lambda t: "\x00" not in t))
def test_a_batch_the_codec_builds_is_one_the_fleet_accepts(n, tag):
    items = [(i + 1, codec.encode_event("in", "qr", TS, "synced", tag=tag)) for i in range(n)]
    payload, used = codec.build_clock_batch(TS, items)
    assert 1 <= used <= checks.MAX_EVENTS and len(payload) <= checks.MAX_PAYLOAD
    doc = json.loads(payload)
    assert checks.batch_problem(doc) is None
    assert all(checks.event_problem(e, TS) is None for e in doc["events"])


@pytest.mark.parametrize("kw, ok", [
    ({"badge": "A" * 8}, True), ({"badge": "A" * 7}, False),
    ({"badge": "A" * 20}, True), ({"badge": "A" * 21}, False),
    ({"badge": None, "tag": "t" * 64}, True), ({"badge": None, "tag": "t" * 65}, False),
    ({"badge": None, "tag": ""}, False),
    ({"method": "manual", "reason": "r" * 120}, True),
    ({"method": "manual", "reason": "r" * 121}, False),
    ({"method": "manual", "reason": ""}, False), ({"method": "manual", "reason": None}, False),
    ({"visit": 1}, True), ({"visit": 0}, False), ({"visit": 2**31 - 1}, True),
    ({"visit": 2**31}, False),
])
def test_each_limit_on_both_sides(kw, ok):
    kw = {"dir": "in", "method": "nfc", "ts": TS, "tq": "synced", "badge": "04A1B2C3D4E5F6",
          **kw}
    assert (codec_verdict(kw) is None) is ok, codec_verdict(kw)


@pytest.mark.parametrize("seq, ok", [(1, True), (0, False), (2**31 - 1, True), (2**31, False)])
def test_seq_on_both_sides(seq, ok):
    assert (checks.event_seq({"seq": seq}) is not None) is ok
    try:
        codec.with_seq(seq, b'{"dir":"in"}')
        written = True
    except codec.CodecError:
        written = False
    assert written is ok


@pytest.mark.parametrize("ts, verdict", [
    (TS + checks.FUTURE_S, None), (TS + checks.FUTURE_S + 1, "ts_future"),
    (TS - checks.PAST_S, None), (TS - checks.PAST_S - 1, "ts_past")])
def test_the_time_window_on_both_sides(ts, verdict):
    assert checks.event_problem(event(ts=ts), TS) == verdict


def test_a_batch_of_exactly_16_events_and_of_17():
    sixteen = {"now": TS, "events": [event(seq=i) for i in range(1, 17)]}
    assert checks.batch_problem(sixteen) is None
    sixteen["events"].append(event(seq=17))
    assert checks.batch_problem(sixteen) == "bad_batch"
    assert checks.batch_problem({"now": TS, "events": []}) == "bad_batch"


def test_the_1024_byte_limit_on_both_sides(session, agency):
    def payload(size: int) -> bytes:
        ev = event(method="manual", reason="x")
        raw = json.dumps({"now": TS, "events": [ev]}, separators=(",", ":")).encode()
        ev["reason"] = "x" * (1 + size - len(raw))
        out = json.dumps({"now": TS, "events": [ev]}, separators=(",", ":")).encode()
        assert len(out) == size
        return out

    assert handle_clock(session, "r1", payload(1024), NOW).refused is None
    assert handle_clock(session, "r1", payload(1025), NOW).refused == "oversized"


# the numbers docs/protocol.md states, not the module's constants: a constant moved by one
# would move its test with it (a mutation run showed it)
@pytest.mark.parametrize("gap_s, double", [(10, True), (11, False)])
def test_the_double_tap_window_on_both_sides(session, agency, clock, gap_s, double):
    handle_clock(session, "r1", clock(event(seq=1), event(seq=2, ts=TS + gap_s)), NOW)
    session.commit()
    match_pending(session)
    session.commit()
    kinds = list(session.scalars(select(Anomaly.kind)))
    assert ("double_tap" in kinds) is double


@pytest.mark.parametrize("offset_s, flagged", [(300, False), (301, True)])
def test_the_clock_offset_threshold_on_both_sides(session, agency, offset_s, flagged):
    # the fleet's clock is NOW; the batch says the device's clock was offset_s behind
    raw = json.dumps({"now": TS - offset_s, "events": [event(ts=TS - offset_s)]}).encode()
    handle_clock(session, "r1", raw, NOW)
    session.commit()
    match_pending(session)
    session.commit()
    kinds = list(session.scalars(select(Anomaly.kind)))
    assert ("clock_off" in kinds) is flagged, kinds


def test_the_ack_parser_edges():
    assert codec.parse_ack(b'{"ack":0,"rejected":[]}')[0] == 0
    with pytest.raises(codec.CodecError):
        codec.parse_ack(b'{"ack":-1,"rejected":[]}')


_ = timedelta  # (kept for readers who extend the time tests)
