"""down/config reassembly (firmware/config.py) as the device sees it: parts in any order, hash
check, stale versions, oversized text, persistence across a restart. CPython and MicroPython,
one source; the messages are built here as the fleet sends them (test_config.py checks the
fleet's own encoder against the device, on CPython)."""
import hashlib
import json

from firmware.config import MAX_TEXT, ConfigReceiver
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from tests.firmware.fakes import Clock
from tests.firmware.support import tmpdir

A, B = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA"
T = 1795420000
BASE = "tg/v1/r1/down/config"


def text(n, badge=A):
    rows = ",".join('[%d,"%s",%d,%d]' % (100 + i, badge, T + 3600 * i, T + 3600 * i + 1800)
                    for i in range(n))
    return ('{"badges":["%s"],"tolerance_min":30,"tz":"Europe/Paris","visits":[%s]}'
            % (badge, rows))


def sha(s):
    return "".join("%02x" % c for c in hashlib.sha256(s.encode()).digest())


def messages(v, s, size=700):
    """What the fleet publishes: parts first, then the manifest (inline when it fits)."""
    if len(s) < size:
        return [(BASE, ('{"v":%d,"hash":"%s","parts":0,"d":%s}' % (v, sha(s), json.dumps(s)))
                 .encode())]
    out = []
    for i in range(0, len(s), size):
        out.append((BASE + "/%d" % len(out),
                    '{"v":%d,"i":%d,"d":%s}' % (v, len(out), json.dumps(s[i:i + size]))))
    out.append((BASE, '{"v":%d,"hash":"%s","parts":%d}' % (v, sha(s), len(out))))
    return [(t, p.encode()) for t, p in out]


def feed(rx, msgs):
    got = None
    for t, p in msgs:
        got = rx.on_message(t, p) or got
    return got


def test_sha256_is_the_standard_one():
    assert sha("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_inline_then_reversed_parts_then_a_restart():
    d = tmpdir("config")
    rx = ConfigReceiver("r1", d + "/a.json")
    p = feed(rx, messages(2, text(1)))
    assert p is not None and p.version == 2 and p.known(A)  # inline, applied
    assert rx.applied == 2
    msgs = messages(3, text(60))
    assert len(msgs) >= 4 and max(len(m[1]) for m in msgs) <= 1024  # parts under 1 KiB
    p = feed(rx, list(reversed(msgs)))
    assert p is not None and p.version == 3 and len(p) == 60
    with open(d + "/a.json") as f:
        saved = json.load(f)
    assert saved["v"] == 3 and len(saved["config"]["visits"]) == 60
    rx2 = ConfigReceiver("r1", d + "/a.json")  # a restart: the saved config comes back
    p = rx2.load()
    assert p is not None and p.version == 3 and len(p) == 60 and rx2.load_status == "ok"
    assert feed(rx2, msgs) is None and rx2.stale == len(msgs)  # an equal version is ignored
    bad = messages(4, text(40, B))
    t0, p0 = bad[0]
    bad[0] = (t0, p0.replace(b"1795", b"1796", 1))  # a part altered: the hash differs
    assert feed(rx2, bad) is None
    assert (rx2.bad, rx2.applied) == (1, 3)  # counted, the old one kept


def test_bad_json_in_a_valid_envelope():
    d = tmpdir("config")
    for s in ('{"badges":"x","tolerance_min":30,"tz":"UTC","visits":[]}', '{"badges":[],'):
        rx = ConfigReceiver("r1", d + "/b.json")
        assert feed(rx, messages(5, s)) is None and rx.bad == 1 and rx.applied == 0, s


def test_stale_parts_of_an_older_version_never_mix_in():
    rx = ConfigReceiver("r1", tmpdir("config") + "/c.json")
    old, new = messages(6, text(50, B)), messages(7, text(50, A))
    p = feed(rx, old[:2] + new[:-1] + old + new[-1:])
    assert p is not None and p.version == 7 and p.known(A) and not p.known(B)
    assert (rx.applied_count, rx.bad) == (1, 0)


def test_oversized_is_refused_with_a_counter_and_its_memory_released():
    rx = ConfigReceiver("r1", tmpdir("config") + "/d.json")
    huge = text(MAX_TEXT // 40 + 50)
    assert len(huge) > MAX_TEXT
    assert feed(rx, messages(8, huge)) is None and rx.oversized == 1 and rx._size == 0


def test_through_the_reader_core_with_health_and_a_restart():
    d = tmpdir("config")
    r = ReaderCore("r1", Journal(d + "/j"), Planning(), Clock(T))
    assert r.tap(B) == "unknown"  # no planning yet
    for tp, pl in messages(9, text(20)):
        r.on_message(tp, pl)
    assert r.planning.version == 9
    assert r.tap(A) == "in"
    assert r.health(T, 1, 1000)[1].endswith(b',"cfg":9}')
    r = ReaderCore("r1", Journal(d + "/j"), Planning(), Clock(T))
    assert r.planning.version == 9  # kept across a restart
    with open(d + "/j/config.json", "rb") as f:
        saved = f.read()
    # the same file, byte for byte, on both interpreters
    assert saved.startswith(b'{"v":9,"hash":"9b9b596647b1eccfbefc95ba39555d04355742e4ccb21fa9'
                            b'a46d5271f2687785","config":{"badges":["04A1B2C3D4E5F6"],"')
    assert (len(saved), sha(saved.decode())) == (
        1070, "ff784e6058eb8e15f726e247b52c0126a2aea36155eea6be6820418a4b696ab7")
