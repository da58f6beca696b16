"""The protocol codec against exact wire bytes (docs/protocol.md), on CPython and on MicroPython
from this one source (tests/firmware/conftest.py): the same bytes asserted on both interpreters."""
import json

from firmware.codec import (CodecError, build_clock_batch, encode_event, encode_health,
                            parse_ack, topic, with_seq)
from tests.firmware.support import raises

IN = encode_event("in", "nfc", 1795426549, "synced", badge="04A1B2C3D4E5F6")
MANUAL = encode_event("out", "manual", 1795428000, "rtc", tag="C12-7F3A",
                      reason="tag unreadable")


def test_topic():
    assert topic("demo-r1", "up/clock") == "tg/v1/demo-r1/up/clock"
    assert topic("A_b-9" * 12 + "abcd", "down/ack").startswith("tg/v1/A_b-9")
    for bad in ("", "a/b", "a+b", "x" * 65, "é"):
        with raises(CodecError):
            topic(bad, "up/clock")


def test_event_exact_bytes():
    assert IN == (b'{"badge":"04A1B2C3D4E5F6","dir":"in","method":"nfc",'
                  b'"ts":1795426549,"tq":"synced"}')
    assert MANUAL == (b'{"tag":"C12-7F3A","dir":"out","method":"manual",'
                      b'"reason":"tag unreadable","ts":1795428000,"tq":"rtc"}')
    assert encode_event("in", "qr", 5, "unsynced", badge="DEADBEEF", tag="t", visit=12) == (
        b'{"badge":"DEADBEEF","tag":"t","dir":"in","method":"qr","ts":5,"tq":"unsynced",'
        b'"visit":12}')


def test_strings_are_escaped_and_utf8():
    ev = encode_event("in", "manual", 1, "rtc", tag='a"b\\c', reason="étiquette\nillisible")
    assert ev == ('{"tag":"a\\"b\\\\c","dir":"in","method":"manual",'
                  '"reason":"étiquette\\u000aillisible","ts":1,"tq":"rtc"}').encode()
    assert json.loads(ev)["reason"] == "étiquette\nillisible"
    assert json.loads(ev)["tag"] == 'a"b\\c'


def test_a_visit_id_is_a_31_bit_integer():
    ev = encode_event("in", "manual", 1, "rtc", tag='a"b\\c', reason="\u00e9tiquette\nillisible",
                      visit=2000000000)
    assert ev == (b'{"tag":"a\\"b\\\\c","dir":"in","method":"manual","reason":"\xc3\xa9tiquette'
                  b'\\u000aillisible","ts":1,"tq":"rtc","visit":2000000000}')
    with raises(CodecError):
        encode_event("in", "nfc", 1, "synced", "04A1B2C3", visit=2147483648)


def test_event_rejects():
    for kw in [
        dict(dir="up"), dict(method="rfid"), dict(tq="ntp"), dict(badge=None),
        dict(badge="04a1b2c3"), dict(badge="04A1B2"), dict(badge="0" * 22), dict(badge="04A1B2XY"),
        dict(tag="", badge=None), dict(tag="x" * 65, badge=None), dict(method="manual"),
        dict(method="manual", reason="x" * 121), dict(ts=True), dict(ts=1.5), dict(visit="7"),
    ]:
        args = dict(dir="in", method="nfc", ts=1, tq="synced", badge="04A1B2C3")
        args.update(kw)
        with raises(CodecError):
            encode_event(**args)


def test_with_seq_and_placeholder():
    assert with_seq(41, IN) == b'{"seq":41,' + IN[1:]
    assert with_seq(7, b"") == b'{"seq":7}'


def test_batch_exact_bytes_matches_protocol_example():
    payload, n = build_clock_batch(1795426600, [(41, IN), (42, MANUAL)])
    assert n == 2
    assert payload == (
        b'{"now":1795426600,"events":['
        b'{"seq":41,"badge":"04A1B2C3D4E5F6","dir":"in","method":"nfc","ts":1795426549,'
        b'"tq":"synced"},'
        b'{"seq":42,"tag":"C12-7F3A","dir":"out","method":"manual","reason":"tag unreadable",'
        b'"ts":1795428000,"tq":"rtc"}]}')
    assert json.loads(payload) == {"now": 1795426600, "events": [
        {"seq": 41, "badge": "04A1B2C3D4E5F6", "dir": "in", "method": "nfc",
         "ts": 1795426549, "tq": "synced"},
        {"seq": 42, "tag": "C12-7F3A", "dir": "out", "method": "manual",
         "reason": "tag unreadable", "ts": 1795428000, "tq": "rtc"}]}


def test_batch_packs_under_the_limit():
    items = [(i, IN) for i in range(1, 30)]
    payload, n = build_clock_batch(1795426600, items)
    assert len(payload) <= 1024 and 1 <= n <= 16
    bigger, _ = build_clock_batch(1795426600, items[:n + 1], limit=10**6)
    assert n == 16 or len(bigger) > 1024  # the next one would not have fit
    assert [e["seq"] for e in json.loads(payload)["events"]] == list(range(1, n + 1))
    assert build_clock_batch(1, [(1, IN)] * 20, limit=10**6)[1] == 16
    payload, n = build_clock_batch(1, [(1, IN), (2, IN)], limit=50)
    assert n == 1  # at least one, even over the limit
    with raises(CodecError):
        build_clock_batch(1, [])


def test_a_placeholder_in_a_batch():
    payload, n = build_clock_batch(1795426600, [(i, IN) for i in range(1, 30)] + [(30, b"")])
    assert (n, len(payload) <= 1024) == (10, True)  # packed under 1 KiB
    assert build_clock_batch(7, [(9, b"")])[0] == b'{"now":7,"events":[{"seq":9}]}'


def test_typical_events_fit_eight_per_kib():
    ev = encode_event("out", "nfc", 1795426549, "synced", badge="04A1B2C3D4E5F6A1B2C3",
                      visit=123456789)
    payload, n = build_clock_batch(1795426600, [(100000 + i, ev) for i in range(16)])
    assert n >= 8


def test_parse_ack():
    assert parse_ack(b'{"ack": 42, "rejected": [{"seq": 40, "reason": "ts_future"}]}') == (
        42, [(40, "ts_future")])
    assert parse_ack('{"ack":0,"rejected":[],"extra":1}') == (0, [])


def test_parse_ack_malformed():
    for payload in [
        b"", b"not json", b"nope", b"[1]", b'{"rejected": []}', b'{"ack": "5", "rejected": []}',
        b'{"ack": true, "rejected": []}', b'{"ack": -1, "rejected": []}',
        b'{"ack": 1.5, "rejected": []}', b'{"ack": 5}', b'{"ack": 5, "rejected": {}}',
        b'{"ack": 5, "rejected": [5]}', b'{"ack": 5, "rejected": [{"seq": 1}]}', b'\xff\xfe',
        b'{"ack": 5, "rejected": []}' + b" " * 1000,
    ]:
        with raises(CodecError):
            parse_ack(payload)


def test_health_exact_bytes():
    assert encode_health(1795426600, "0.1.0", 3600, 41234, 3, False, "ok", "synced",
                         rssi=-61, bat=87) == (
        b'{"now":1795426600,"fw":"0.1.0","up":3600,"heap":41234,"rssi":-61,"bat":87,'
        b'"jd":3,"jfull":false,"rd":"ok","tq":"synced"}')
    assert encode_health(1795426600, "0.1.0", 3600, 41234, 3, False, "ok", "synced", -61, 87) == (
        b'{"now":1795426600,"fw":"0.1.0","up":3600,"heap":41234,"rssi":-61,"bat":87,'
        b'"jd":3,"jfull":false,"rd":"ok","tq":"synced"}')
    assert encode_health(1, "0.1.0", 2, 3, 0, True, "nfc_timeout", "unsynced") == (
        b'{"now":1,"fw":"0.1.0","up":2,"heap":3,"jd":0,"jfull":true,"rd":"nfc_timeout",'
        b'"tq":"unsynced"}')
    with raises(CodecError):
        encode_health(1, "0.1.0", 2, 3, 0, True, "ok", "gps")


# -- edges a mutation run found unpinned (issue #14 item 12) --------------------------------

def test_control_characters_are_escaped_and_nothing_else():
    ev = encode_event("in", "manual", 1, "rtc", tag="t", reason="\x01\x1f \x7f~")
    assert b'"reason":"\\u0001\\u001f \x7f~"' in ev


def test_with_seq_of_an_empty_object():
    assert with_seq(7, b"{}") == b'{"seq":7}'  # a placeholder read back as "{}"
    assert with_seq(7, b'{"a":1}') == b'{"seq":7,"a":1}'


def test_a_batch_of_exactly_the_limit_fits():
    for spare, used in [(0, 2), (-1, 1)]:
        items = [(1, IN), (2, MANUAL)]
        whole, n = build_clock_batch(1795426600, items, limit=10**6)
        assert n == 2
        payload, n = build_clock_batch(1795426600, items, limit=len(whole) + spare)
        assert n == used


def test_sixteen_events_at_most_and_exactly_16_when_they_fit():
    small = encode_event("in", "qr", 1, "rtc", tag="t")
    for count, want in [(15, 15), (16, 16), (17, 16)]:
        payload, n = build_clock_batch(1, [(i, small) for i in range(1, count + 1)],
                                       limit=10**6)
        assert n == want and len(json.loads(payload)["events"]) == want


def test_an_ack_of_1024_bytes_is_read_and_one_of_1025_is_not():
    for size, ok in [(1024, True), (1025, False)]:
        raw = b'{"ack":5,"rejected":[]}'
        raw += b" " * (size - len(raw))
        assert len(raw) == size
        if ok:
            assert parse_ack(raw) == (5, [])
        else:
            with raises(CodecError):
                parse_ack(raw)


def test_a_device_id_of_1_and_of_64_characters():
    assert topic("a", "up/clock") == "tg/v1/a/up/clock"
    assert topic("z" * 64, "up/health") == "tg/v1/" + "z" * 64 + "/up/health"


def test_the_codec_itself_writes_badges_of_8_to_20_characters():
    # the codec's own refusal, not the fleet's (test_protocol_edges checks they agree)
    for badge, ok in [("A" * 7, False), ("A" * 8, True), ("A" * 20, True), ("A" * 21, False)]:
        try:
            encode_event("in", "nfc", 1, "synced", badge=badge)
            written = True
        except CodecError:
            written = False
        assert written is ok
