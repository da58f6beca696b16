# down/config reassembly's heap on MicroPython: applying a 50-visit config many times does not
# grow it. The reassembly itself is tested in tests/firmware/test_config_reassembly.py, on both
# interpreters; a heap figure needs run_mp.mjs's steps (gc.collect frees nothing inside one
# part on the WebAssembly port), which a test function cannot have.
import gc
import hashlib
import json

from _check import check, done, eq, tmpdir
from firmware.config import ConfigReceiver

A = "04A1B2C3D4E5F6"
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
    out = []
    for i in range(0, len(s), size):
        out.append((BASE + "/%d" % len(out),
                    '{"v":%d,"i":%d,"d":%s}' % (v, len(out), json.dumps(s[i:i + size]))))
    out.append((BASE, '{"v":%d,"hash":"%s","parts":%d}' % (v, sha(s), len(out))))
    return [(t, p.encode()) for t, p in out]


rx6 = ConfigReceiver("r1", DIR + "/e.json")
V = [10]


def apply_many(n):
    for _ in range(n):
        for t, p in messages(V[0], text(50)):
            rx6.on_message(t, p)
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
