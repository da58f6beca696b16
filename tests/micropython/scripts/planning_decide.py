# Planning and the tap decision on MicroPython, and the planning's heap with 500 visits and
# 200 badges (the ESP32 budget is 48 KiB for the whole steady state).
import gc

from _check import MP, check, eq, raises
from _check import done
from firmware.decide import decide
from firmware.planning import Planning

A, B, U = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA", "DEADBEEF"
T = 1795420000
p = Planning.from_config({"version": 3, "tz": "Europe/Paris", "tolerance_min": 30,
                          "badges": [A, B], "visits": [[11, A, T, T + 3600],
                                                       [15, A, T + 3600, T + 7200],
                                                       [14, U, T, T + 600]]})
check(p.known(A) and p.known(A.lower()) and not p.known(U), "known")
eq(p.visit_for(A, T - 1800), 11, "window opens")
eq(p.visit_for(A, T - 1801), None, "before window")
eq(p.visit_for(A, T + 3000), 15, "closest start")
eq(p.visit_for(A, T + 9000), 15, "window closes")
eq(p.visit_for(A, T + 9001), None, "after window")
eq(p.visit_for(U, T), 14, "planned, not allow-listed")
eq(p.visit_end(15), T + 7200, "visit end")
raises(ValueError, Planning.from_config, {"version": 1})
raises(ValueError, Planning.from_config, {"version": 1, "tolerance_min": 1, "badges": ["XY"],
                                          "visits": []})

taps = {}


def tap(uid, now):
    d = decide(p, taps, uid, now)
    taps[uid] = (now, d.dir, d.visit, d.until)
    return d.dir, d.visit, d.feedback


eq(tap(A, T), ("in", 11, "in"), "in")
eq(tap(A, T + 5), ("in", 11, "repeat"), "repeat")
eq(tap(A, T + 600), ("out", 11, "out"), "out")
eq(tap(B, T), ("in", None, "unplanned_in"), "unplanned in")
eq(tap(B, T + 60), ("out", None, "unplanned_out"), "unplanned out")
eq(tap(U, T), ("in", 14, "unknown"), "unknown")
eq(tap(B, T + 60 + 14 * 3600), ("in", None, "unplanned_in"), "after out, in")
eq(tap(B, T + 120 + 28 * 3600 + 1), ("in", None, "unplanned_in"), "in expired after 14 h")

badges = ["04%012X" % (i * 7919 + 1) for i in range(200)]
cfg = {"version": 1, "tolerance_min": 30, "badges": badges,
       "visits": [[100000 + i, badges[i % 200], T + (i // 200) * 7200,
                   T + (i // 200) * 7200 + 3600] for i in range(500)]}
#@step (a new part: see tools/micropython/run_mp.mjs)
gc.collect()
before = gc.mem_alloc() if MP else 0
big = Planning.from_config(cfg)
#@step
gc.collect()
if MP:
    used = gc.mem_alloc() - before
    print("planning heap: %d bytes for 500 visits, 200 badges" % used)
    check(used < 16 * 1024, "planning uses %d bytes" % used)
eq(big.visit_for(badges[3], T + 7200 + 100), 100203, "big lookup")
done()
