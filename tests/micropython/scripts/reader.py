# ReaderCore on MicroPython: taps, batches, acks, resends, restarts, a lossy fleet, and a heap
# that does not grow with taps.
import gc
import json
import os

from _check import MP, check, done, eq, tmpdir
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore

A, B, U = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA", "DEADBEEF"
T = 1795420000
PLAN = Planning.from_config({"version": 3, "tolerance_min": 30, "badges": [A, B],
                             "visits": [[7, A, T, T + 3600]]})
ACK = "tg/v1/r1/down/ack"
BASE = tmpdir("reader")


class Clock:
    def __init__(self):
        self.t = T

    def time(self):
        return self.t

    def quality(self):
        return "synced"


def boot(name, clock, **kw):
    return ReaderCore("r1", Journal(BASE + "/" + name, segment_records=4), PLAN, clock, **kw)


def seqs(out):
    return [e["seq"] for _, p, _ in out for e in json.loads(p)["events"]]


c = Clock()
r = boot("basic", c)
eq(r.tap(A), "in", "in")
eq(r.journal.read_from(1, 1)[0][1], b'{"badge":"04A1B2C3D4E5F6","dir":"in","method":"nfc",'
   b'"ts":1795420000,"tq":"synced","visit":7}', "journaled event")
c.t += 5
eq(r.tap(A), "repeat", "repeat")
c.t += 60
eq(r.tap(U), "unknown", "unknown")
eq(r.tap(B), "unplanned_in", "unplanned")
eq(boot("basic", c).tap(A), "out", "state rebuilt from the journal")
r = boot("basic", c)
out = r.outgoing(c.t)
eq(seqs(out), [1, 2, 3, 4, 5], "batch")
eq(out[0][0], "tg/v1/r1/up/clock", "clock topic")
eq(r.outgoing(c.t + 4), [], "waiting for the ack")
eq(seqs(r.outgoing(c.t + 5)), [1, 2, 3, 4, 5], "resend after ack_timeout")
r.on_message(ACK, b'{"ack": 4, "rejected": [{"seq": 2, "reason": "ts_future"}]}')
r.on_message(ACK, b'{"ack": 3, "rejected": []}')
r.on_message(ACK, b"{not json")
r.on_message("tg/v1/r1/down/cmd", b"{}")
eq((r.journal.acked, r.rejected, r.stale_acks, r.bad_messages, r.ignored_messages),
   (4, 1, 1, 1, 1), "ack handling")
r.on_connect()
eq(seqs(r.outgoing(c.t + 6)), [5], "resend after reconnect")
c.t += 600
eq(boot("basic", c).tap(A), "in", "state kept through the freed journal")
eq(r.health(c.t, 10, 4000)[1][:40], b'{"now":1795420665,"fw":"0.1.0","up":10,"', "health")

# A lossy fleet: drops batches and acks, duplicates acks, the reader reboots now and then.
stored = {}
c = Clock()
r = boot("lossy", c, window=16)
rnd = 12345


def rand(n):
    global rnd
    rnd = (rnd * 1103515245 + 12345) & 0x7FFFFFFF
    return rnd % n


for step in range(400):
    c.t += 1 + rand(3)
    if step < 250 and rand(2):
        check(r.tap((A, B, U)[rand(3)]) != "full", "tap")
    if rand(50) == 0:
        r = boot("lossy", c, window=16)
    for _, payload, _ in r.outgoing(c.t):
        if rand(10) < 3:
            continue
        for e in json.loads(payload)["events"]:
            stored[e["seq"]] = e
        ack = 0
        while ack + 1 in stored:
            ack += 1
        if rand(10) < 2:
            continue
        body = b'{"ack": %d, "rejected": []}' % ack
        for _ in range(1 + rand(2)):
            r.on_message(ACK, body)
n = r.journal.last_seq
eq(sorted(stored), list(range(1, n + 1)), "all stored, gap-free")
eq((r.journal.acked, r.journal.depth), (n, 0), "all acked")
eq([f for f in os.listdir(BASE + "/lossy") if f.endswith(".log")], [], "journal freed")

# Heap: taps must not grow it (bounded tap state, no caches).
c = Clock()
r = ReaderCore("r1", Journal(BASE + "/heap", max_records=5000, segment_records=64), PLAN, c)
uids = ["%08X" % (0x10000000 + i) for i in range(300)]


def taps(k):
    for i in range(k):
        c.t += 7
        r.tap(uids[i % 300])
        if i % 50 == 49:
            r.on_message(ACK, b'{"ack": %d, "rejected": []}' % r.journal.last_seq)


taps(3000)  # warm-up: the tap state and the dict tables reach their size
#@step (a new part, so that gc.collect() frees: see tools/micropython/run_mp.mjs)
gc.collect()
m1 = gc.mem_alloc() if MP else 0
taps(5000)
#@step
gc.collect()
m2 = gc.mem_alloc() if MP else 0
taps(5000)
#@step
gc.collect()
if MP:
    m3 = gc.mem_alloc()
    print("heap over 10000 taps: %d, %d, %d bytes allocated" % (m1, m2, m3))
    check(m3 - m1 < 2048 and m3 - m2 < 1024, "heap grows with taps")
check(len(r.taps) <= 64, "tap state bounded")
done()
