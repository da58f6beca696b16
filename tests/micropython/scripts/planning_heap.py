# The planning's heap on MicroPython with 500 visits and 200 badges (the ESP32 budget is 48 KiB
# for the whole steady state). Its lookups are tested in tests/firmware/test_planning.py, on
# both interpreters; a heap figure needs run_mp.mjs's steps (gc.collect frees nothing inside
# one part on the WebAssembly port), which a test function cannot have.
import gc

from _check import MP, check, done, eq
from firmware.planning import Planning

T = 1795420000
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
