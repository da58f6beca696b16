# The reader box's SOS button (firmware/sos.py) on MicroPython and CPython: a 3 s press raises
# one SOS, kept on flash until the fleet's down/sos names it, sent before the clock batches and
# again every 5 s and at each reconnect; a short press, a longer hold or a second press while
# one waits raise nothing more.
import json

from _check import check, done, eq, tmpdir
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.sos import SosButton

T = 1795420000
BASE = tmpdir("sos")
UP, DOWN = "tg/v1/r1/up/sos", "tg/v1/r1/down/sos"


class Clock:
    def __init__(self):
        self.t = T

    def time(self):
        return self.t

    def quality(self):
        return "synced"


_n = [0]


def rand(n):
    _n[0] += 1
    return bytes([_n[0]] * n)


c = Clock()
journal = Journal(BASE + "/j", segment_records=4)
b = SosButton("r1", c, rand, store=journal)
eq(b.pending, None, "nothing at start")
check(not b.press(True, 0) and not b.press(True, 5000), "pressed from the start: not heeded")
check(not b.press(False, 5001) and not b.press(True, 5002) and not b.press(True, 8001),
      "under 3 s: nothing")
check(not b.press(False, 8002), "released")
check(not b.press(True, 10000) and b.press(True, 13000), "3 s held: SOS")
check(not b.press(True, 20000), "held longer: no second SOS")
eq(b.pending, {"id": "010101010101", "ts": T, "tq": "synced"}, "the SOS")
eq(b.raised, 1, "raised once")
check(not b.press(False, 20001) and b.press(True, 20002) is False, "new press starts")
check(b.press(True, 23002), "a second long press while one waits")
eq(b.pending["id"], "010101010101", "is the same alarm")

# kept on flash: a reboot sends it again
b2 = SosButton("r1", c, rand, store=Journal(BASE + "/j", segment_records=4))
eq(b2.pending, b.pending, "reloaded after a reboot")
out = b2.outgoing(T)
eq([(t, json.loads(p), q) for t, p, q in out], [(UP, b.pending, 1)], "sent at once")
eq(b2.outgoing(T + 4), [], "not before 5 s")
eq(len(b2.outgoing(T + 5)), 1, "again after 5 s")
b2.on_connect()
eq(len(b2.outgoing(T + 6)), 1, "and at a reconnect")
check(b2.handles(DOWN) and not b2.handles("tg/v1/r2/down/sos"), "its own topic only")
check(not b2.on_message(DOWN, b"{bad"), "malformed answer")
check(not b2.on_message(DOWN, b'{"id": "ffffffffffff"}'), "another id")
check(b2.on_message(DOWN, b'{"id": "010101010101"}'), "stored by the fleet")
eq((b2.pending, b2.outgoing(T + 60)), (None, []), "nothing more to send")
eq(SosButton("r1", c, rand, store=Journal(BASE + "/j", segment_records=4)).pending, None,
   "and gone from flash")

# in ReaderCore: first in line, before the clock batches; the answer frees it
A = "04A1B2C3D4E5F6"
plan = Planning.from_config({"version": 1, "tolerance_min": 30, "badges": [A],
                             "visits": [[7, A, T, T + 3600]]})
j = Journal(BASE + "/core", segment_records=4)
button = SosButton("r1", c, rand, store=j)
r = ReaderCore("r1", j, plan, c, sos=button)
eq(r.tap(A), "in", "a tap first")
check(not button.press(False, 0) and not button.press(True, 1) and button.press(True, 3001),
      "then an SOS")
topics = [t for t, _, _ in r.outgoing(c.t)]
eq(topics, [UP, "tg/v1/r1/up/clock"], "the SOS goes before the clock batch")
r.on_message(DOWN, json.dumps({"id": button.pending["id"]}).encode())
eq((button.pending, button.stored, r.ignored_messages), (None, 1, 0), "answered")
r.on_message(DOWN, b'{"id": "x"}')
eq(r.ignored_messages, 1, "a stale answer is counted")
done()
