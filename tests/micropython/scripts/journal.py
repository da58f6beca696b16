# The journal on MicroPython: power cut at every byte, damage, ack, full, restart.
import os

from _check import check, done, eq, raises, tmpdir
from firmware.journal import Journal, JournalFull, record

BASE = tmpdir("journal")
eq(record(1, b"ab"), b"\xa5\x01\x02\x00\x01\x00\x00\x00\xea\x33\xa3\xed\x61\x62", "record bytes")


def payload(i):
    return b'{"badge":"04A1B2C3D4E5F6","dir":"in","n":%d}' % i


def fill(d, n, seg=4, mx=2000):
    j = Journal(d, max_records=mx, segment_records=seg)
    for i in range(1, n + 1):
        eq(j.append(payload(i)), i, "append seq")
    return j


def segfile(d, first):
    return d + "/s%08d.log" % first


# Power cut after every byte of a write, mid-segment and at the start of a new segment.
run = 0
for before in (5, 8):
    cut = record(before + 1, payload(before + 1))
    first = (before // 4) * 4 + 1
    for k in range(len(cut) + 1):
        run += 1
        d = BASE + "/cut%d" % run
        fill(d, before)
        with open(segfile(d, first), "ab") as f:
            f.write(cut[:k])
        j = Journal(d, segment_records=4)
        whole = k == len(cut)
        eq(j.torn, 1 if 0 < k < len(cut) else 0, "torn at %d" % k)
        eq(j.last_seq, before + (1 if whole else 0), "last_seq at %d" % k)
        want = [(i, payload(i)) for i in range(1, before + (2 if whole else 1))]
        eq(j.read_from(1, 100), want, "records at %d" % k)
        nxt = j.append(b"after")
        eq(nxt, len(want) + 1, "next seq at %d" % k)
        eq(Journal(d, segment_records=4).read_from(1, 100), want + [(nxt, b"after")], "reopen")

# Damage inside a segment: the rest is kept, the hole becomes a placeholder.
d = BASE + "/damage"
fill(d, 6, seg=64)
size = len(record(1, payload(1)))
with open(segfile(d, 1), "rb") as f:
    data = bytearray(f.read())
data[size + 20] ^= 0xFF
with open(segfile(d, 1), "wb") as f:
    f.write(data)
j = Journal(d)
eq((j.torn, j.corrupt, j.last_seq), (0, 1, 6), "damage counters")
got = j.read_from(1, 100)
eq(got[1], (2, b""), "placeholder")
eq(got[5], (6, payload(6)), "kept after damage")
eq(j.append(b"x"), 7, "seq after damage")

# Ack frees whole segments, persists, and seq continues from it.
d = BASE + "/ack"
j = fill(d, 10)
j.ack(4)
eq(sorted(os.listdir(d)), ["ack", "s00000005.log", "s00000009.log"], "freed")
j.ack(2)
eq(j.acked, 4, "backwards ack ignored")
j.ack(100)
eq((j.acked, j.depth, sorted(os.listdir(d))), (10, 0, ["ack"]), "all freed")
j = Journal(d, segment_records=4)
eq(j.append(b"x"), 11, "seq after full free and restart")

# A torn ack write leaves ack.tmp: the old ack stands.
d = BASE + "/acktmp"
fill(d, 6, seg=2).ack(2)
with open(d + "/ack.tmp", "wb") as f:
    f.write(b"4")
j = Journal(d, segment_records=2)
eq((j.acked, j.last_seq), (2, 6), "ack.tmp ignored")
check("ack.tmp" not in os.listdir(d), "ack.tmp removed")

# Full: refuse, never drop.
d = BASE + "/full"
j = fill(d, 5, seg=2, mx=5)
raises(JournalFull, j.append, b"x")
eq(j.last_seq, 5, "nothing written when full")
j.ack(1)
eq(j.append(b"x"), 6, "room again after ack")
done()
