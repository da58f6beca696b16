# The device's update path on MicroPython: Ed25519 verify (time, heap), a signed bundle
# fetched chunk by chunk, refused when tampered, switched in, imported from its slot after
# the "reboot", confirmed or rolled back; the minimum version kept across reboots, older,
# expired and other-channel offers refused. _ota_data.py is written by the test (host-signed).
import binascii
import gc
import json
import os
import sys
import time

from _check import MP, check, done, eq, tmpdir
from _ota_data import BETA, EXPIRED, FILES, OFFER, OFFER_BAD_SIG, OLDER, PUB, TAMPERED

from firmware.ota import boot, offer_message, read_state
from firmware.ota.ed25519 import verify
from firmware.ota.updater import Updater


def ms():
    return time.ticks_ms() if MP else int(time.time() * 1000)


def serve(u, files):
    reports = []
    while True:
        out = u.outgoing(0)
        gets = [json.loads(p) for k, p in out if k == "get"]
        reports += [json.loads(p) for k, p in out if k == "report"]
        if not gets:
            return reports
        for g in gets:
            data = files[g["f"]][g["o"]:g["o"] + 640]
            u.on_chunk(('{"b":%d,"f":%d,"o":%d,"d":"%s"}' % (
                g["b"], g["f"], g["o"], binascii.b2a_base64(data).decode().strip())).encode())


# 1. Ed25519 verify alone, of the signed offer
msg = offer_message(OFFER["oid"], OFFER["exp"], OFFER["ch"], OFFER["v"], OFFER["mh"])
sig = binascii.a2b_base64(OFFER["osig"].encode())
gc.collect()
t = ms()
check(verify(binascii.unhexlify(PUB.encode()), msg, sig), "good signature")
print("ed25519 verify: %d ms" % (ms() - t))
check(not verify(binascii.unhexlify(PUB.encode()), msg,
                 binascii.a2b_base64(OFFER_BAD_SIG["osig"].encode())), "bad signature")

root = tmpdir("ota")
# 2. a bad signature: refused before anything is fetched
u = Updater(root, "0.1.0", keys=[PUB], boot_state=boot(root, None), channel="stable")
u.connected = True
u.on_offer(OFFER_BAD_SIG, 1800000000)
r = serve(u, FILES)
eq([(x["st"], x.get("why")) for x in r], [("failed", "bad_signature")], "bad sig refused")
# 3. a file changed after signing: refused at that file, nothing switched
u.on_offer(dict(OFFER, id=2), 1800000000)
r = serve(u, TAMPERED)
eq((r[-1]["st"], r[-1]["why"]), ("failed", "sha_mismatch"), "tampered refused")
eq(read_state(root), {"cur": None}, "old firmware kept")
# 4. the good bundle: fetched, checked, switched
u.on_offer(dict(OFFER, id=3), 1800000000)
r = serve(u, FILES)
eq(r[-1]["st"], "installed", "installed")
check(u.reboot, "reboot asked")
# 5. the "reboot": boot puts the slot first and the package is imported from it
st = boot(root, sys.path)
eq(sys.path[0], root + "/a", "slot first on sys.path")
import firmware  # noqa: E402
eq(firmware.VERSION, "0.2.0", "the slot's package runs")
from firmware.ota.updater import Updater as U2  # noqa: E402  (the slot's own copy)
u = U2(root, "0.1.0", keys=[PUB], deadline_s=30, boot_state=st, channel="stable")
eq(u.fw, "0.2.0", "version from the slot")
u.connected = True
u.health(False, 31)
check(u.reboot, "unhealthy past the deadline: reboot")
st = boot(root, None)
eq((st["cur"], st["out"]["why"]), (None, "rolled_back"), "rolled back to the factory firmware")
from firmware.ota import read_min  # noqa: E402  (the slot's copy)
eq(read_min(root), None, "a rolled-back update does not raise the minimum")


def box():
    """A boot: boot() then the updater, its last outcome drained."""
    b = U2(root, "0.1.0", keys=[PUB], deadline_s=30, boot_state=boot(root, None),
           channel="stable")
    b.connected = True
    b.outgoing(0)
    return b


def refused(b, cmd):
    b.on_offer(cmd, 1800000000)
    r = [json.loads(p) for k, p in b.outgoing(0) if k == "report"]
    return r[-1]["why"] if len(r) == 1 and r[0]["st"] == "failed" and b.job is None else r


# 6. the bundle again, confirmed healthy: the minimum version is raised in flash
u = box()
u.on_offer(dict(OFFER, id=4), 1800000000)
eq(serve(u, FILES)[-1]["st"], "installed", "installed again")
u = box()  # the trial boot
u.health(True, 5)
eq(read_min(root), "0.2.0", "minimum raised when confirmed")
# 7. a reboot: an older bundle, correctly signed and not expired, is refused
u = box()
eq((u.fw, u.min), ("0.2.0", "0.2.0"), "minimum read from flash after the reboot")
eq(refused(u, OLDER), "below_minimum", "older signed bundle refused")
# 8. even when the state is lost and the factory firmware runs again
os.remove(root + "/state.json")
u = box()
eq((u.fw, u.min), ("0.1.0", "0.2.0"), "factory firmware, minimum kept")
eq(refused(u, OLDER), "below_minimum", "older signed bundle refused on the factory firmware")
eq(refused(u, EXPIRED), "expired", "expired offer refused")
eq(refused(u, BETA), "wrong_channel", "offer for another channel refused")
eq(refused(u, dict(BETA, id=13, ch="stable")), "bad_signature", "relabelled offer refused")
eq(read_state(root), {"cur": None}, "nothing switched")
done()
