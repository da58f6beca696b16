# down/config reassembly (firmware/config.py) on MicroPython: parts in any order, hash check,
# stale versions, oversized text, persistence across a restart, bounded heap.
import gc
import hashlib
import json

from _check import check, done, eq, tmpdir
from firmware.config import MAX_TEXT, ConfigReceiver
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore

A, B = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA"
T = 1795420000
BASE = "tg/v1/r1/down/config"
DIR = tmpdir("config")


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
        return [(BASE, '{"v":%d,"hash":"%s","parts":0,"d":%s}' % (v, sha(s), json.dumps(s)))]
    out = []
    for i in range(0, len(s), size):
        out.append((BASE + "/%d" % len(out),
                    '{"v":%d,"i":%d,"d":%s}' % (v, len(out), json.dumps(s[i:i + size]))))
    out.append((BASE, '{"v":%d,"hash":"%s","parts":%d}' % (v, sha(s), len(out))))
    return [(t, p.encode()) for t, p in out]


def feed(rx, msgs):
    got = None
    for t, p in msgs:
        if type(p) is str:
            p = p.encode()
        got = rx.on_message(t, p) or got
    return got


eq(sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256")
# inline
rx = ConfigReceiver("r1", DIR + "/a.json")
p = feed(rx, messages(2, text(1)))
check(p is not None and p.version == 2 and p.known(A), "inline applied")
eq(rx.applied, 2, "applied version")
# parts in reverse order, each under 1 KiB
big = text(60)
msgs = messages(3, big)
check(len(msgs) >= 4 and max(len(m[1]) for m in msgs) <= 1024, "parts under 1 KiB")
p = feed(rx, list(reversed(msgs)))
check(p is not None and p.version == 3 and len(p) == 60, "reversed parts applied")
with open(DIR + "/a.json") as f:
    saved = json.load(f)
eq(saved["v"], 3, "saved version")
eq(len(saved["config"]["visits"]), 60, "saved visits")
# restart: the saved config comes back
rx2 = ConfigReceiver("r1", DIR + "/a.json")
p = rx2.load()
check(p is not None and p.version == 3 and len(p) == 60 and rx2.load_status == "ok", "reload")
check(feed(rx2, msgs) is None and rx2.stale == len(msgs), "equal version ignored")
# hash mismatch: a part altered
bad = messages(4, text(40, B))
t0, p0 = bad[0]
bad[0] = (t0, p0.replace(b"1795", b"1796", 1))
check(feed(rx2, bad) is None, "bad hash not applied")
eq((rx2.bad, rx2.applied), (1, 3), "bad hash counted, old kept")
# bad JSON in a valid envelope, wrong types
for s in ('{"badges":"x","tolerance_min":30,"tz":"UTC","visits":[]}', '{"badges":[],'):
    rx3 = ConfigReceiver("r1", DIR + "/b.json")
    check(feed(rx3, messages(5, s)) is None and rx3.bad == 1 and rx3.applied == 0, "bad config")
# stale parts from an older version never mix in
rx4 = ConfigReceiver("r1", DIR + "/c.json")
old, new = messages(6, text(50, B)), messages(7, text(50, A))
p = feed(rx4, old[:2] + new[:-1] + old + new[-1:])
check(p is not None and p.version == 7 and p.known(A) and not p.known(B), "no mixing")
eq((rx4.applied_count, rx4.bad), (1, 0), "one apply, nothing bad")
# oversized: refused with a counter, memory released
rx5 = ConfigReceiver("r1", DIR + "/d.json")
huge = text(MAX_TEXT // 40 + 50)
check(len(huge) > MAX_TEXT, "huge is over the cap")
check(feed(rx5, messages(8, huge)) is None and rx5.oversized == 1 and rx5._size == 0, "cap")
# through ReaderCore, with health's cfg key and a restart


class Clock:
    def time(self):
        return T

    def quality(self):
        return "synced"


r = ReaderCore("r1", Journal(DIR + "/j"), Planning(), Clock())
eq(r.tap(B), "unknown", "no planning yet")
for tp, pl in messages(9, text(20)):
    r.on_message(tp, pl)
eq(r.planning.version, 9, "core planning swapped")
eq(r.tap(A), "in", "planned tap")
check(r.health(T, 1, 1000)[1].endswith(b',"cfg":9}'), "health cfg")
r = ReaderCore("r1", Journal(DIR + "/j"), Planning(), Clock())
eq(r.planning.version, 9, "planning kept across a restart")
print("BYTES", open(DIR + "/j/config.json").read()[:120])
#@step
# heap: applying a 50-visit config many times does not grow the heap
rx6 = ConfigReceiver("r1", DIR + "/e.json")
V = [10]


def apply_many(n):
    for _ in range(n):
        feed(rx6, messages(V[0], text(50)))
        V[0] += 1


apply_many(3)
#@step
gc.collect()
BEFORE = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
#@step
apply_many(20)
#@step
gc.collect()
after = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
eq(rx6.applied, V[0] - 1, "all applied")
print("config heap growth: %d bytes" % (after - BEFORE))
check(after - BEFORE < 4096, "no heap growth")
done()
