# ReaderCore's heap on MicroPython: taps must not grow it (bounded tap state, no caches). Its
# behaviour is tested in tests/firmware/test_reader.py, on both interpreters; a heap figure
# needs run_mp.mjs's steps (gc.collect frees nothing inside one part on the WebAssembly port),
# which a test function cannot have.
import gc

from _check import MP, check, done, tmpdir
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore

A, B = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA"
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
