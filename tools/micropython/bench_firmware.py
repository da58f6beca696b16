# The firmware logic's heap and speed on MicroPython (run by tools/bench/firmware.py through
# tools/micropython/run_mp.mjs). 500 planned visits, 200 badges; WARMUP taps, then TAPS
# measured ones: known badges in and out around their visits, some unknown badges, some
# repeats; acked every 50 taps as the fleet would. Heap figures are gc.mem_alloc() minus the
# interpreter and firmware code, after collects in new #@step parts (inside one part the
# WebAssembly port's gc.collect() frees nothing; a part's last objects can survive the next
# part's first collect, hence two). The measured taps run in parts of PART taps, the heap
# sampled between them: the port collects only between parts and grows its heap by new areas
# instead, so a longer part spreads its garbage over a wider address range, where more words
# of live data read as pointers and keep some of it (docs/benchmarks.md); an ESP32 collects
# inside its one fixed heap. Prints "BENCH key value" lines.
import gc
import json
import sys
import time

from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.link import MqttLink

TAPS = 10000  # both replaced by tools/bench/firmware.py
WARMUP = 3000
PART = 1000  # taps between two heap samples; this and the three above set by the tool
PARTS = (TAPS + PART - 1) // PART
WARMUP_PARTS = (WARMUP + PART - 1) // PART
VISITS, BADGES, UNKNOWN = 500, 200, 50
T0 = 1795420000
SLOT = 1200  # a visit starts every 20 minutes, each lasts an hour
ACK = "tg/v1/bench/down/ack"
print("BENCH interpreter micropython %d.%d.%d" % sys.implementation.version[:3])


class Clock:
    t = T0 - 600

    def time(self):
        return self.t

    def quality(self):
        return "synced"




async def open_stream(host, port, ssl=None):  # the link is built, not run: no network
    raise OSError(113)


def rand(n):
    state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return state[0] % n


def badge(n):
    # raw UID bytes, as the NFC driver gives them; n >= BADGES: not on the allow-list. No
    # zero bytes: 00 00 nn, as earlier UIDs had, read as a 32-bit word is nn << 16, an
    # address inside this port's heap (it sits at 0x30000 to 0x130000), and MicroPython's
    # collector, which scans every word of a live bytes or array, then keeps whatever object
    # lies there (docs/benchmarks.md). Real UIDs are random bytes; an ESP32's heap is at
    # 0x3FFxxxxx.
    return bytes((4, 0xA1, 0xB2, 0xC3, 0xD0 | (n >> 8), n & 0xFF, 0xE7))


def badge_hex(n):
    return "04A1B2C3%02X%02XE7" % (0xD0 | (n >> 8), n & 0xFF)


def run(n):
    for _ in range(n):
        r = rand(100)
        if r < 5 and state[3] >= 0:
            clock.t += 3  # the same card again at once: a repeat
            b = state[3]
        else:
            clock.t += 30 + rand(60)
            if r < 15:
                b = BADGES + rand(UNKNOWN)
            else:  # a caregiver arriving at or leaving a visit planned around now
                k = (clock.t - T0) // SLOT - rand(4)
                b = (k if k >= 0 else rand(BADGES)) % BADGES
        uid = badge(b)
        t = time.ticks_us()
        fb = core.tap(uid)
        state[2] += time.ticks_diff(time.ticks_us(), t)
        kinds[fb] += 1
        state[3] = b
        state[1] += 1
        if state[1] % 50 == 0:  # the fleet: batches out, ack back
            link.poll(state[1])  # what the net task does (the client is down: nothing more)
            core.on_connect()
            core.outgoing(clock.t)
            core.on_message(ACK, b'{"ack": %d, "rejected": []}' % core.journal.last_seq)



# the bench's own objects, made before the baseline
clock = Clock()
state = [12345, 0, 0, -1]  # rng, taps done, µs spent in tap(), last badge number
kinds = {}
samples = [0] * (PARTS + 1)
entries = [0] * (PARTS + 1)
ns = [0]
for fb in ("in", "out", "unplanned_in", "unplanned_out", "unknown", "repeat", "full", "error"):
    kinds[fb] = 0
#@step
gc.collect()
#@step
gc.collect()
base = gc.mem_alloc()  # interpreter + imported firmware code: not the state measured
print("BENCH heap_code_bytes %d" % base)
#@step
cfg = {"version": 1, "tolerance_min": 30,
       "badges": [badge_hex(b) for b in range(BADGES)],
       "visits": [[1000 + k, badge_hex(k % BADGES), T0 + k * SLOT,
                   T0 + k * SLOT + 3600] for k in range(VISITS)]}
planning = Planning.from_config(cfg)
del cfg
#@step
gc.collect()
#@step
gc.collect()
print("BENCH heap_planning_bytes %d" % (gc.mem_alloc() - base))
#@step
core = ReaderCore("bench", Journal("/bench_journal", max_records=2000), planning, clock)
link = MqttLink(core, open_stream, "bench", "broker.local", user="bench", password="secret")
# The warm-up starts with the bounded caches at their bounds (the tap state's table at its
# largest: 64 badges at once, pruned back to its working size by the warm-up taps that
# follow), so that what grows after it is a leak, not a cache filling
for i in range(72):
    clock.t += 11
    core.tap(badge(2000 + i))
#@repeat 3  (WARMUP_PARTS times, set by tools/bench/firmware.py: PART warm-up taps)
#@step
run(min(PART, WARMUP - state[1]))
#@end
#@step
assert state[1] == WARMUP, "the #@repeat count must be WARMUP_PARTS"
#@repeat 10  (PARTS times, set by tools/bench/firmware.py: sample the heap, then PART taps)
#@step
gc.collect()
#@step
gc.collect()
samples[ns[0]] = gc.mem_alloc() - base
entries[ns[0]] = len(core.taps)
ns[0] += 1
#@step
run(min(PART, WARMUP + TAPS - state[1]))
#@end
#@step
gc.collect()
#@step
gc.collect()
samples[ns[0]] = gc.mem_alloc() - base
entries[ns[0]] = len(core.taps)
ns[0] += 1
#@step
assert ns[0] == PARTS + 1 and state[1] == WARMUP + TAPS, "the #@repeat count must be PARTS"
print("BENCH heap_samples_bytes %s" % ",".join(str(x) for x in samples))
print("BENCH tap_state_samples %s" % ",".join(str(x) for x in entries))
print("BENCH heap_after_warmup_bytes %d" % samples[0])
print("BENCH heap_peak_bytes %d" % max(samples))
print("BENCH heap_growth_bytes %d" % (samples[-1] - samples[0]))
print("BENCH heap_growth_after_warmup_bytes %d" % (samples[-1] - samples[0]))
print("BENCH taps %d" % (state[1] - WARMUP))
print("BENCH warmup_taps %d" % WARMUP)
print("BENCH decision_us %.1f" % (state[2] / state[1]))
print("BENCH journal_depth %d" % core.journal.depth)
print("BENCH feedback %s" % ",".join("%s=%d" % (k, kinds[k]) for k in sorted(kinds) if kinds[k]))
# Worst case: the per-badge tap state at its hard cap (64 badges all tapped in): its storage
# is allocated once (firmware/tapstate.py), so this is the steady state again.
for i in range(200):
    clock.t += 11
    core.tap(badge(1000 + i))
#@step
gc.collect()
#@step
gc.collect()
print("BENCH tap_state_full %d" % len(core.taps))
print("BENCH heap_full_tap_state_bytes %d" % (gc.mem_alloc() - base))
