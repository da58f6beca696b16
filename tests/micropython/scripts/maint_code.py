# The maintenance code on MicroPython: the hand-written HMAC-SHA256 gives CPython's hmac
# answers (_vectors.py, written by the test), a code the fleet issued (by CPython) checks here,
# and the console stays locked (status only) until `maint <code>`, then refuses a reused code,
# a code of another box, an expired one, and any code while the clock is unsynced.
import json

from _check import check, done, eq, tmpdir
from _vectors import CODE, CODE_OTHER, CODE_OLD, HMACS, IDENT, KEY, NOW
from firmware import maintcode
from firmware.runtime.console import Console
from firmware.runtime.settings import Settings

for key, msg, want in HMACS:
    eq(maintcode.hmac_sha256(bytes.fromhex(key), bytes.fromhex(msg)).hex(), want, "hmac")

key = bytes.fromhex(KEY)
eq(maintcode.check(key, IDENT, CODE, NOW)[0] > NOW, True, "the fleet's code checks here")
eq(maintcode.issue(key, IDENT, NOW, 7)[0], maintcode.issue(key, IDENT, NOW, 7)[0], "stable")


class Clock:
    t = NOW
    q = "synced"

    def time(self):
        return self.t

    def quality(self):
        return self.q


class Rt:
    def __init__(self, path):
        self.settings = Settings(path)
        self.clock = Clock()
        self.device_id = IDENT
        self.reboot_needed = False
        self.taps = None
        self.link = None
        self.applied = 0

    def apply_broker(self):
        self.applied += 1

    def status(self):
        return {"id": self.device_id, "tq": self.clock.quality()}


D = tmpdir("maint_code")
rt = Rt(D + "/settings.json")
c = Console(rt)
eq(json.loads(c.handle("status"))["console"], "open", "no key: open")
check(c.handle("taps").startswith("{"), "open console answers taps")
rt.settings.set("mkey", KEY)
eq(json.loads(c.handle("status"))["console"], "locked", "a key: locked")
for cmd in ("taps", "broker", "wifi", "settings", "broker set host evil.example", "reboot"):
    check(c.handle(cmd).startswith("error: locked: "), "refused " + cmd)
eq(rt.settings.get("host"), "", "nothing changed")
rt.clock.q = "unsynced"
check("unsynced" in c.handle("maint " + CODE), "unsynced clock: refused")
rt.clock.q = "rtc"
check("another box" in c.handle("maint " + CODE_OTHER), "other box's code")
check("expired" in c.handle("maint " + CODE_OLD), "expired code")
eq(json.loads(c.handle("maint " + CODE.lower().replace("-", " ")))["maintenance"], True,
   "the code opens it, typed in groups")
eq(json.loads(c.handle("status"))["console"], "maintenance", "maintenance")
eq(c.handle("broker set host mqtt.example"), "ok", "broker change accepted")
eq((rt.settings.get("host"), rt.applied), ("mqtt.example", 1), "and applied")
check(KEY not in c.handle("broker") and KEY not in c.handle("settings"), "no key printed")
eq(json.loads(c.handle("exit")), {"console": "locked"}, "exit")
check(c.handle("taps").startswith("error: locked"), "locked after exit")
check("already used" in c.handle("maint " + CODE), "used once")
rebooted = Console(Rt(D + "/settings.json"))  # a reboot: the used codes are on flash
check("already used" in rebooted.handle("maint " + CODE), "used once, after a reboot too")
rt.clock.t = NOW + 31 * 60
check("expired" in c.handle("maint " + maintcode.issue(key, IDENT, NOW, 9)[0]), "expires")
done()
