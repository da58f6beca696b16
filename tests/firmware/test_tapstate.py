"""TapState, the reader's per-badge tap state in storage allocated once (CPython and
MicroPython, one source): a mapping that decides exactly as the dict of tuples it replaced."""
from firmware.decide import decide
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.tapstate import TapState
from tests.firmware.fakes import Clock
from tests.firmware.support import eq, raises, tmpdir

T = 1795420000
A, B = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA"


def test_a_mapping_of_badge_to_last_tap():
    s = TapState(8)
    eq(len(s), 0)
    eq(s.get(A), None)
    s[A] = (T, "in", 7, T + 5400)
    s[B] = (T + 1, "out", None, 0)
    eq(s[A], (T, "in", 7, T + 5400))
    eq(s.get(B), (T + 1, "out", None, 0))
    s[A] = (T + 60, "out", 7, 0)  # replaced, not added
    eq(len(s), 2)
    eq(sorted(s.items()), [(A, (T + 60, "out", 7, 0)), (B, (T + 1, "out", None, 0))])
    eq((A in s, "DEADBEEF" in s), (True, False))
    s["DEADBEEF"] = (0, "in", None, 4 * T)  # until past 2^32 - 1: held as 2^32 - 1
    eq(s["DEADBEEF"], (0, "in", None, 0xFFFFFFFF))
    s.clear()
    eq((len(s), list(s.items()), s.get(A)), (0, [], None))


def test_lookups_of_what_cannot_be_a_badge_find_nothing():
    s = TapState(4)
    s[A] = (T, "in", None, T + 1)
    for uid in ("XYZ", A.lower(), "", "0" * 21, "04A1B2C3D4E5F\u00e9", None, 42,
                bytes.fromhex(A)):
        eq(s.get(uid), None, repr(uid))
        eq(uid in s, False, repr(uid))
    with raises(KeyError):
        s[B]


def test_bad_entries_are_refused_with_a_clear_error():
    s = TapState(4)
    for uid, entry in ((A.lower(), (T, "in", None, 0)), ("XYZ", (T, "in", None, 0)),
                       ("0" * 21, (T, "in", None, 0)), (A, (T, "sideways", None, 0)),
                       (A, (-1, "in", None, 0)), (A, (T, "in", 1 << 32, 0)),
                       (A, ("now", "in", None, 0)), (A, (T, "in", None)), (A, None)):
        with raises(ValueError) as e:
            s[uid] = entry
        eq("tap state" in str(e.value), True, str(e.value))
    eq(len(s), 0)
    for i in range(4):
        s["%08X" % i] = (T, "out", None, 0)
    with raises(ValueError) as e:
        s["FFFFFFFF"] = (T, "out", None, 0)
    eq(str(e.value), "the tap state is full (4 badges)")
    s["00000002"] = (T + 1, "in", 3, T + 9)  # a badge held: still replaced when full
    eq(s["00000002"], (T + 1, "in", 3, T + 9))


def test_every_byte_of_its_tables_is_ascii():
    # the collector is conservative: no word of the tables may read as a heap address
    s = TapState(65)
    for i in range(500):
        s["%08X" % (i * 7919)] = (T + i, "in" if i % 3 else "out", i if i % 2 else None, T)
        if len(s) == 65:
            s.prune(T + 10**6, 32, 40)
    for table in (s._index, s._uid, s._kind):
        eq([b for b in table if not 0x2E <= b <= 0x7A], [])


def test_its_storage_is_allocated_once():
    s = TapState(65)
    tables = [s._index, s._uid, s._kind, s._ts, s._visit, s._until]
    sizes = [len(t) for t in tables]
    for i in range(3000):
        s["%010X" % (i * 104729 % 5000)] = (T + i, "in", None, T + i + 50400)
        s.prune(T + i, 32, 64)
    eq([x is y for x, y in zip(tables, [s._index, s._uid, s._kind, s._ts, s._visit,
                                        s._until])], [True] * 6)
    eq([len(t) for t in tables], sizes)


def _dict_prune(taps, now, soft, hard):
    """What ReaderCore did with its dict of tuples before TapState (the reference)."""
    if len(taps) <= soft:
        return 0
    for uid in list(taps):
        ts, dir, _, until = taps[uid]
        if now >= ts + 10 and not (dir == "in" and now <= until):
            del taps[uid]
    dropped = 0
    while len(taps) > hard:
        del taps[min(taps, key=lambda u: taps[u][0])]
        dropped += 1
    return dropped


def test_every_badge_held_is_found_after_deletions():
    # the hard cap drops the oldest: with random times, entries anywhere in the index go, and
    # the probe chains are shifted back; whatever stays must still be found
    s, ref = TapState(65), {}
    x = 1
    for i in range(4000):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        uid = "%08X" % (x % 300)
        s[uid] = ref[uid] = (T + x % 100000 * 4096 + i, "in", None, T + 10**9)  # no ties
        if len(s) == 65:
            hard = 20 + x % 45
            eq(s.prune(T, 32, hard), _dict_prune(ref, T, 32, hard))
            eq(len(s), hard)
    eq(dict(s.items()), ref)
    for uid in ref:
        eq(s[uid], ref[uid], uid)
    for i in range(300):
        uid = "%08X" % i
        eq(s.get(uid), ref.get(uid), uid)


def test_decides_as_the_dict_it_replaced():
    # 20,000 taps of 150 badges (100 planned, 50 not): repeats, ins and outs around visits,
    # unplanned ins left open for 14 h so that the hard cap of 64 is reached and passed
    badges = ["04A1B2C3%02X%02XE7" % (0xD0 | (b >> 8), b & 0xFF) for b in range(150)]
    visits = [[1000 + k, badges[k % 100], T + k * 900, T + k * 900 + 3600] for k in range(300)]
    p = Planning.from_config({"version": 1, "tolerance_min": 30, "badges": badges[:100],
                              "visits": visits})
    ref, state = {}, TapState(65)
    now, x, last = T - 600, 7, 0
    fb, dropped = {}, [0, 0]
    for i in range(20000):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        r = x % 100
        if r < 5:
            now += 3
            b = last
        else:
            now += 1 + x % 97  # never twice the same second: one oldest at the hard cap
            b = x % 150 if r < 40 else ((now - T) // 900 - x % 4) % 100
        uid, last = badges[b], b
        d1, d2 = decide(p, ref, uid, now), decide(p, state, uid, now)
        eq((d2.dir, d2.visit, d2.feedback, d2.until), (d1.dir, d1.visit, d1.feedback, d1.until),
           "tap %d" % i)
        fb[d1.feedback] = fb.get(d1.feedback, 0) + 1
        ref[uid] = state[uid] = (now, d1.dir, d1.visit, d1.until)
        dropped[0] += _dict_prune(ref, now, 32, 64)
        dropped[1] += state.prune(now, 32, 64)
        if i % 1000 == 0:
            eq(dict(state.items()), ref, "tap %d" % i)
    eq(dict(state.items()), ref)
    eq(dropped[1], dropped[0])
    eq([k for k in ("in", "out", "repeat", "unplanned_in", "unplanned_out", "unknown")
        if fb.get(k, 0) < 100], [])  # every kind of decision was made, many times
    eq(dropped[0] > 100, True, "the hard cap was passed %d times" % dropped[0])


def test_a_restart_with_more_open_badges_than_it_holds():
    # 70 badges tapped in (none planned: each stays in for 14 h), never acked, then a restart:
    # the journal replay fills the state past its 65 slots; the oldest go, as the first tap
    # after the restart would have pruned them
    d = tmpdir("tapstate")
    clock = Clock(T)
    p = Planning.from_config({"version": 1, "tolerance_min": 30, "badges": [], "visits": []})
    r = ReaderCore("r1", Journal(d + "/j"), p, clock)
    uids = ["%08X" % (0xA0000000 + i) for i in range(70)]
    for u in uids:
        clock.t += 5
        r.tap(u)
    eq((len(r.taps), r.taps_dropped), (64, 6))
    clock.t += 60
    r2 = ReaderCore("r1", Journal(d + "/j"), p, clock)
    eq(len(r2.taps), 65)
    eq(r2.taps_dropped, 5)  # 70 into 65 slots, each time pruned to 64 first
    eq(r2.tap(uids[-1]), "unknown")  # still in: an out, not allow-listed
    eq(r2.journal.read_from(71, 1)[0][1].count(b'"dir":"out"'), 1)
    eq(len(r2.taps), 64)
    eq(r2.tap(uids[0]), "unknown")  # forgotten at the cap: a new in
    eq(r2.journal.read_from(72, 1)[0][1].count(b'"dir":"in"'), 1)
