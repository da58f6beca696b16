"""ReaderCore: journal before feedback, batches, acks, resends, restarts."""
import json
import os

import pytest

from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore

A, B, U = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA", "DEADBEEF"
T = 1795420000
CFG = {"version": 3, "tz": "Europe/Paris", "tolerance_min": 30, "badges": [A, B],
       "visits": [[7, A, T, T + 3600]]}
ACK = "tg/v1/r1/down/ack"


class Clock:
    def __init__(self, t=T, q="synced"):
        self.t, self.q = t, q

    def time(self):
        return self.t

    def quality(self):
        return self.q


def make(tmp_path, clock=None, **kw):
    jkw = {k: kw.pop(k) for k in ("max_records", "segment_records") if k in kw}
    j = Journal(str(tmp_path / "j"), **jkw)
    return ReaderCore("r1", j, Planning.from_config(CFG), clock or Clock(), **kw)


def events(out):
    return [e for _, p, _ in out for e in json.loads(p)["events"]]


def ack(r, n, rejected=()):
    r.on_message(ACK, json.dumps({"ack": n, "rejected": [
        {"seq": s, "reason": "ts_future"} for s in rejected]}).encode())


def test_tap_journals_before_feedback(tmp_path):
    r = make(tmp_path)
    assert r.tap(A) == "in"
    assert r.journal.read_from(1, 5) == [(1, b'{"badge":"04A1B2C3D4E5F6","dir":"in",'
                                          b'"method":"nfc","ts":1795420000,"tq":"synced",'
                                          b'"visit":7}')]
    r.clock.t += 5
    r.clock.q = "rtc"
    assert r.tap(A.lower()) == "repeat"
    r.clock.t += 60
    assert r.tap(bytes.fromhex(A), "qr") == "out"
    assert r.tap(U) == "unknown"
    assert r.tap(B) == "unplanned_in"
    evs = [json.loads(p) for _, p in r.journal.read_from(1, 10)]
    assert [(e["dir"], e["method"], e["tq"]) for e in evs] == [
        ("in", "nfc", "synced"), ("in", "nfc", "rtc"), ("out", "qr", "rtc"),
        ("in", "nfc", "rtc"), ("in", "nfc", "rtc")]


def test_manual_and_bad_reads(tmp_path):
    r = make(tmp_path)
    assert r.tap(A, "manual", "badge reader broken") == "in"
    assert r.tap(A, "manual") == "error"  # a manual event needs a reason
    assert r.tap("XYZ") == "error"
    assert r.bad_reads == 2 and r.journal.last_seq == 1


def test_full_journal_refuses_and_counts(tmp_path):
    r = make(tmp_path, max_records=3)
    for i in range(3):
        r.clock.t += 60
        assert r.tap(B) != "full"
    r.clock.t += 60
    assert r.tap(B) == "full"
    assert r.refused_full == 1 and r.journal.last_seq == 3
    assert r.taps[B][0] == T + 180  # a refused tap changes no state
    ack(r, 1)
    assert r.tap(B) != "full"


def test_outgoing_window_and_batches(tmp_path):
    r = make(tmp_path, window=20)
    for i in range(30):
        r.clock.t += 20
        r.tap(B)
    out = r.outgoing(r.clock.t)
    assert all(t == "tg/v1/r1/up/clock" and q == 1 and len(p) <= 1024 for t, p, q in out)
    assert [e["seq"] for e in events(out)] == list(range(1, 21))
    assert r.outgoing(r.clock.t) == []  # nothing new within the window
    ack(r, 5)
    assert [e["seq"] for e in events(r.outgoing(r.clock.t))] == list(range(21, 26))
    assert r.journal.acked == 5


def test_resend_after_ack_timeout_and_reconnect(tmp_path):
    r = make(tmp_path, ack_timeout=5)
    for i in range(3):
        r.clock.t += 20
        r.tap(B)
    now = r.clock.t
    assert len(events(r.outgoing(now))) == 3
    assert r.outgoing(now + 4) == []
    assert [e["seq"] for e in events(r.outgoing(now + 5))] == [1, 2, 3]
    assert r.resends == 1
    r.clock.t = now + 6
    ack(r, 2)
    assert r.outgoing(now + 10) == []  # the ack advanced at +6: the wait restarts
    assert [e["seq"] for e in events(r.outgoing(now + 11))] == [3]
    r.on_connect()
    assert [e["seq"] for e in events(r.outgoing(now + 12))] == [3]
    ack(r, 3)
    assert r.outgoing(now + 100) == [] and r.journal.depth == 0


def test_clock_set_back_does_not_stall_resends(tmp_path):
    r = make(tmp_path)
    r.tap(B)
    assert r.outgoing(T)
    assert r.outgoing(T - 3600) == []
    assert r.outgoing(T - 3600 + 5)


def test_acks_backwards_malformed_and_other_topics(tmp_path):
    r = make(tmp_path)
    for i in range(4):
        r.clock.t += 20
        r.tap(B)
    ack(r, 3, rejected=[2])
    assert r.journal.acked == 3 and r.rejected == 1 and r.last_rejected == [(2, "ts_future")]
    ack(r, 1)
    ack(r, 3)
    assert r.journal.acked == 3 and r.stale_acks == 2
    for bad in (b"", b"{", b'{"ack":"4"}', b"\xff", b'{"ack":4}'):
        r.on_message(ACK, bad)
    assert r.bad_messages == 5 and r.journal.acked == 3
    r.on_message("tg/v1/r1/down/config", b'{"version":4}')
    r.on_message("tg/v1/r2/down/ack", b'{"ack":4,"rejected":[]}')
    # down/config goes to firmware/config.py: this one has no "v", so it is counted as bad
    assert r.ignored_messages == 1 and r.config.bad == 1 and r.journal.acked == 3
    ack(r, 99)  # beyond what exists: clamped by the journal
    assert r.journal.acked == 4
    c = r.counters()
    assert c["bad_messages"] == 5 and c["stale_acks"] == 2 and c["rejected"] == 1


def test_health(tmp_path):
    r = make(tmp_path, fw="1.2.3")
    r.tap(A)
    assert r.health(T + 1, 3600, 41234, rssi=-61, bat=87) == (
        "tg/v1/r1/up/health",
        b'{"now":1795420001,"fw":"1.2.3","up":3600,"heap":41234,"rssi":-61,"bat":87,'
        b'"jd":1,"jfull":false,"rd":"ok","tq":"synced","cfg":3}', 0)


def test_state_survives_restart_from_the_journal(tmp_path):
    r = make(tmp_path)
    assert r.tap(A) == "in"
    r2 = make(tmp_path, clock=Clock(T + 600))
    assert r2.tap(A) == "out"


def test_state_survives_restart_after_the_journal_was_freed(tmp_path):
    c = Clock()
    r = make(tmp_path, clock=c, segment_records=2)
    assert r.tap(A) == "in"
    c.t += 60
    r.tap(B)
    ack(r, 2)
    assert os.listdir(tmp_path / "j").count("s00000001.log") == 0  # freed
    c.t += 600
    assert make(tmp_path, clock=c, segment_records=2).tap(A) == "out"
    c.t += 60
    assert make(tmp_path, clock=c, segment_records=2).tap(A) == "in"


def test_corrupt_state_file_falls_back_to_the_journal(tmp_path):
    r = make(tmp_path)
    r.tap(A)
    r.journal.write_meta("taps.json", b"{garbage")
    r2 = make(tmp_path, clock=Clock(T + 600))
    assert r2.state_errors == 1 and r2.tap(A) == "out"


def test_tap_state_is_bounded(tmp_path):
    r = make(tmp_path, max_records=20000, segment_records=256)
    for i in range(10000):
        r.clock.t += 1
        r.tap("%08X" % (0x10000000 + i))
        if i % 500 == 0:
            ack(r, r.journal.last_seq)
        assert len(r.taps) <= 64
    assert r.taps_dropped > 0


@pytest.mark.parametrize("bad", ["a/b", ""])
def test_bad_device_id(tmp_path, bad):
    with pytest.raises(ValueError):
        ReaderCore(bad, Journal(str(tmp_path / "j")), Planning(), Clock())
