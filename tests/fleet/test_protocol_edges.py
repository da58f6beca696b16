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


@pytest.mark.parametrize("ts, verdict", [  # 24 h ahead, 30 days behind (docs/protocol.md)
    (TS + 86_400, None), (TS + 86_401, "ts_future"),
    (TS - 2_592_000, None), (TS - 2_592_001, "ts_past")])
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


# -- the health report's bounds and the remaining event limits, on both sides (docs/protocol.md;
# a mutation run moved each by one unseen) ---------------------------------------------------
HEALTH = {"now": TS, "fw": "0.1.0", "up": 3600, "heap": 41234, "jd": 3, "jfull": False,
          "rd": "ok", "tq": "synced"}
INT31 = 2**31 - 1


@pytest.mark.parametrize("key, good, bad", [
    ("now", [946_684_800, 4_102_444_800], [946_684_799, 4_102_444_801, True]),
    ("up", [0, INT31], [-1, INT31 + 1]), ("heap", [0, INT31], [-1, INT31 + 1]),
    ("jd", [0, INT31], [-1, INT31 + 1]),
    ("rssi", [-200, 0, None], [-201, 1]), ("bat", [0, 100, None], [-1, 101]),
    ("off", [-INT31, INT31, None], [-INT31 - 1, INT31 + 1]),
    ("tq", ["synced", "rtc", "unsynced"], ["ntp", None]),
    ("jfull", [True, False], [0, None]),
    ("fw", ["", "v" * 32], ["v" * 33, "1\x00", None]),
    ("rd", ["", "ok", "e" * 1000], ["e" * 1001, "ok\x00", None]),
])
def test_each_health_bound_on_both_sides(key, good, bad):
    for v in good:
        assert checks.health_ok({**HEALTH, key: v}) is True, (key, v)
    for v in bad:
        assert checks.health_ok({**HEALTH, key: v}) is False, (key, v)
    assert checks.health_ok([HEALTH]) is False


@pytest.mark.parametrize("ts, ok", [(946_684_800, True), (946_684_799, False),
                                    (4_102_444_800, True), (4_102_444_801, False)])
def test_the_years_2000_to_2100_on_both_sides(ts, ok):
    # judged against the device's own "now", so the ±24 h / 30 days window does not interfere
    assert (checks.event_problem(event(ts=ts), ts) is None) is ok
    assert (checks.batch_problem({"now": ts, "events": [event()]}) is None) is ok


def test_a_sun_url_up_to_255_characters_and_a_plain_tag_up_to_64():
    sun = "https://tg.example/s?c=1&picc_data=" + "A" * 32 + "&cmac=" + "0" * 16
    assert checks.tag_max(sun) == 255 and checks.tag_max("t" * 80) == 64
    assert checks.tag_max(None) == 64
    for tag, verdict in [(sun + "x" * (255 - len(sun)), None),
                         (sun + "x" * (256 - len(sun)), "bad_event"),
                         ("t" * 64, None), ("t" * 65, "bad_event")]:
        assert checks.event_problem(event(badge=None, tag=tag), TS) == verdict, len(tag)
        try:
            codec.encode_event("in", "nfc", TS, "synced", tag=tag)
            written = None
        except codec.CodecError:
            written = "bad_event"
        assert written == verdict  # the box and the fleet agree


@pytest.mark.parametrize("kw, verdict", [
    ({"badge": None, "tag": None}, "bad_event"), ({"badge": 12345678}, "bad_event"),
    ({"tag": 7}, "bad_event"), ({"dir": "up"}, "bad_event"), ({"method": "rfid"}, "bad_event"),
    ({"reason": "", "method": "qr"}, None), ({"reason": 5}, "bad_event"),
    ({"visit": True}, "bad_event"), ({"pos": [48.8, 2.35, 10]}, None),
    ({"pos": [48.8, 2.35]}, "bad_event"), ({"tq": "ntp"}, "bad_event"),
    ({"ts": float(TS)}, "bad_event"),
])
def test_each_event_field_on_its_own(kw, verdict):
    assert checks.event_problem(event(**kw), TS) == verdict


def test_numbers_are_ints_not_bools_and_positions_finite():
    assert checks.is_int(1) and not checks.is_int(True) and not checks.is_int(1.0)
    assert checks.is_number(1.5) and checks.is_number(1) and not checks.is_number(False)
    assert checks.number_in(0.5, 0, 1) and not checks.number_in(float("nan"), 0, 1)
    assert checks.int_in(5, 5, 5) and not checks.int_in(4, 5, 6) and not checks.int_in(7, 5, 6)
    assert checks.text_ok("", 3, 0) and not checks.text_ok("", 3) and checks.text_ok("abc", 3)
    assert not checks.text_ok("abcd", 3) and not checks.text_ok(b"ab", 3)
    assert checks.content(event(pos=[1, 2, 3])) == checks.content(event(pos=[1, 2, 3]))
    assert checks.content(event(pos=[1, 2, 3]))[-1] == (1, 2, 3)


@pytest.mark.parametrize("pos, ok", [
    ([-90, -180, 0], True), ([90, 180, 100_000], True),
    ([-90.0001, 0, 1], False), ([90.0001, 0, 1], False), ([0, -180.0001, 1], False),
    ([0, 180.0001, 1], False), ([0, 0, -0.0001], False), ([0, 0, 100_000.0001], False),
])
def test_a_position_on_both_sides_of_each_bound(pos, ok):
    assert checks.position_ok(pos) is ok
    assert (checks.event_problem(event(pos=pos), TS) is None) is ok
