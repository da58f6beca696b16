"""ReaderCore: journal before feedback, batches, acks, resends, restarts (CPython and
MicroPython, one source)."""
import json
import os

from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from tests.firmware.fakes import Clock
from tests.firmware.support import raises, tmpdir

A, B, U = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA", "DEADBEEF"
T = 1795420000
CFG = {"version": 3, "tz": "Europe/Paris", "tolerance_min": 30, "badges": [A, B],
       "visits": [[7, A, T, T + 3600]]}
ACK = "tg/v1/r1/down/ack"


def make(d, clock=None, **kw):
    jkw = {}
    for k in ("max_records", "segment_records"):
        if k in kw:
            jkw[k] = kw.pop(k)
    j = Journal(d + "/j", **jkw)
    return ReaderCore("r1", j, Planning.from_config(CFG), clock or Clock(T), **kw)


def events(out):
    return [e for _, p, _ in out for e in json.loads(p)["events"]]


def ack(r, n, rejected=()):
    r.on_message(ACK, json.dumps({"ack": n, "rejected": [
        {"seq": s, "reason": "ts_future"} for s in rejected]}).encode())


def test_tap_journals_before_feedback():
    d = tmpdir("reader")
    r = make(d)
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


def test_manual_and_bad_reads():
    d = tmpdir("reader")
    r = make(d)
    assert r.tap(A, "manual", "badge reader broken") == "in"
    assert r.tap(A, "manual") == "error"  # a manual event needs a reason
    assert r.tap("XYZ") == "error"
    assert r.bad_reads == 2 and r.journal.last_seq == 1


def test_full_journal_refuses_and_counts():
    d = tmpdir("reader")
    r = make(d, max_records=3)
    for i in range(3):
        r.clock.t += 60
        assert r.tap(B) != "full"
    r.clock.t += 60
    assert r.tap(B) == "full"
    assert r.refused_full == 1 and r.journal.last_seq == 3
    assert r.taps[B][0] == T + 180  # a refused tap changes no state
    ack(r, 1)
    assert r.tap(B) != "full"


def test_outgoing_window_and_batches():
    d = tmpdir("reader")
    r = make(d, window=20)
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


def test_resend_after_ack_timeout_and_reconnect():
    d = tmpdir("reader")
    r = make(d, ack_timeout=5)
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


def test_clock_set_back_does_not_stall_resends():
    d = tmpdir("reader")
    r = make(d)
    r.tap(B)
    assert r.outgoing(T)
    assert r.outgoing(T - 3600) == []
    assert r.outgoing(T - 3600 + 5)


def test_acks_backwards_malformed_and_other_topics():
    d = tmpdir("reader")
    r = make(d)
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


def test_health():
    d = tmpdir("reader")
    r = make(d, fw="1.2.3")
    r.tap(A)
    assert r.health(T + 1, 3600, 41234, rssi=-61, bat=87) == (
        "tg/v1/r1/up/health",
        b'{"now":1795420001,"fw":"1.2.3","up":3600,"heap":41234,"rssi":-61,"bat":87,'
        b'"jd":1,"jfull":false,"rd":"ok","tq":"synced","cfg":3}', 0)


def test_state_survives_restart_from_the_journal():
    d = tmpdir("reader")
    r = make(d)
    assert r.tap(A) == "in"
    r2 = make(d, clock=Clock(T + 600))
    assert r2.tap(A) == "out"


def test_state_survives_restart_after_the_journal_was_freed():
    d = tmpdir("reader")
    c = Clock(T)
    r = make(d, clock=c, segment_records=2)
    assert r.tap(A) == "in"
    c.t += 60
    r.tap(B)
    ack(r, 2)
    assert os.listdir(d + "/j").count("s00000001.log") == 0  # freed
    c.t += 600
    assert make(d, clock=c, segment_records=2).tap(A) == "out"
    c.t += 60
    assert make(d, clock=c, segment_records=2).tap(A) == "in"


def test_corrupt_state_file_falls_back_to_the_journal():
    d = tmpdir("reader")
    r = make(d)
    r.tap(A)
    r.journal.write_meta("taps.json", b"{garbage")
    r2 = make(d, clock=Clock(T + 600))
    assert r2.state_errors == 1 and r2.tap(A) == "out"


def test_tap_state_is_bounded():
    d = tmpdir("reader")
    r = make(d, max_records=20000, segment_records=256)
    for i in range(10000):
        r.clock.t += 1
        r.tap("%08X" % (0x10000000 + i))
        if i % 500 == 0:
            ack(r, r.journal.last_seq)
        assert len(r.taps) <= 64
    assert r.taps_dropped > 0


def test_bad_device_id():
    d = tmpdir("bad_device_id")
    for bad in ["a/b", ""]:
        with raises(ValueError):
            ReaderCore(bad, Journal(d + "/j"), Planning(), Clock(T))


def test_a_day_of_taps_acks_and_restarts():
    d = tmpdir("reader_day")
    c = Clock(T)

    def boot():
        return make(d, clock=c, segment_records=4)

    r = boot()
    assert r.tap(A) == "in"
    c.t += 5
    assert r.tap(A) == "repeat"
    c.t += 60
    assert r.tap(U) == "unknown"
    assert r.tap(B) == "unplanned_in"
    assert boot().tap(A) == "out"  # the state rebuilt from the journal
    r = boot()
    out = r.outgoing(c.t)
    assert [e["seq"] for e in events(out)] == [1, 2, 3, 4, 5]
    assert out[0][0] == "tg/v1/r1/up/clock"
    assert r.outgoing(c.t + 4) == []  # waiting for the ack
    assert [e["seq"] for e in events(r.outgoing(c.t + 5))] == [1, 2, 3, 4, 5]  # ack_timeout
    r.on_message(ACK, b'{"ack": 4, "rejected": [{"seq": 2, "reason": "ts_future"}]}')
    r.on_message(ACK, b'{"ack": 3, "rejected": []}')
    r.on_message(ACK, b"{not json")
    r.on_message("tg/v1/r1/down/cmd", b"{}")
    assert (r.journal.acked, r.rejected, r.stale_acks, r.bad_messages, r.ignored_messages) == (
        4, 1, 1, 1, 1)
    r.on_connect()
    assert [e["seq"] for e in events(r.outgoing(c.t + 6))] == [5]  # resent after a reconnect
    c.t += 600
    assert boot().tap(A) == "in"  # the state kept through the freed journal
    assert r.health(c.t, 10, 4000)[1][:40] == b'{"now":1795420665,"fw":"0.1.0","up":10,"'


def test_a_lossy_fleet_loses_and_duplicates_nothing():
    """The fleet drops batches and acks and duplicates acks; the reader reboots now and
    then. A fixed pseudo-random sequence, the same on both interpreters."""
    d = tmpdir("reader_lossy")
    stored = {}
    c = Clock(T)
    r = make(d, clock=c, segment_records=4, window=16)
    rnd = [12345]

    def rand(n):
        rnd[0] = (rnd[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return rnd[0] % n

    for step in range(400):
        c.t += 1 + rand(3)
        if step < 250 and rand(2):
            assert r.tap((A, B, U)[rand(3)]) != "full"
        if rand(50) == 0:
            r = make(d, clock=c, segment_records=4, window=16)
        for _, payload, _ in r.outgoing(c.t):
            if rand(10) < 3:
                continue
            for e in json.loads(payload)["events"]:
                stored[e["seq"]] = e
            n = 0
            while n + 1 in stored:
                n += 1
            if rand(10) < 2:
                continue
            body = b'{"ack": %d, "rejected": []}' % n
            for _ in range(1 + rand(2)):
                r.on_message(ACK, body)
    n = r.journal.last_seq
    assert n > 50
    assert sorted(stored) == list(range(1, n + 1))  # all stored, gap-free
    assert (r.journal.acked, r.journal.depth) == (n, 0)  # all acked
    assert [f for f in os.listdir(d + "/j") if f.endswith(".log")] == []  # the journal freed
