# The console's settings commands and the settings store's stage / commit on MicroPython: a
# document hex-encoded by the tool (_doc.py, written by the test) is staged on flash, read
# back, its digest is the tool's, and a commit makes it the settings; no answer quotes a value.
import json
import os

from _check import check, done, eq, tmpdir
from _doc import DIGEST, BROKER_DIGEST, HEX, VALUES
from firmware.runtime.console import Console
from firmware.runtime.settings import Settings, canonical, digest

D = tmpdir("settings_stage")
P = D + "/settings.json"


class Wifi:
    ssid, password, drops = "", "", 0

    def __init__(self):
        self.joined = []

    def status(self):
        return "down"

    def rssi(self):
        return None

    def ip(self):
        return None

    def configure(self, ssid, pw):
        self.joined.append((ssid, pw))


class Rt:
    def __init__(self):
        self.settings = Settings(P)
        self.wifi = Wifi()
        self.device_id = "r1"
        self.reboot_needed = False
        self.applied = 0
        self.link = None

    def apply_broker(self):
        self.applied += 1


def send(c, text, size=160):
    for i in range(0, len(text), size):
        a = json.loads(c.handle("settings chunk " + text[i:i + size]))
        check(a["received"] == min(i + size, len(text)), "received")


# -- the digest: one definition, the same bytes on both interpreters
eq(canonical({"port": 1883, "pass": "a\n"}), b"pass=s610a\nport=i1883\n", "canonical")
print("DIGEST " + digest(VALUES))
eq(digest(VALUES), DIGEST, "the tool's digest")
eq(digest(VALUES, ("user", "pass")), BROKER_DIGEST, "the broker digest")

rt = Rt()
rt.settings.update((("ssid", "old-net"), ("password", "old-pass-1"), ("pass", "old-broker")))
before = open(P).read()
c = Console(rt)

# -- stage: written beside the settings, read back, digests answered; nothing applied yet
eq(c.handle("settings drop"), "ok", "drop")
send(c, HEX)
a = json.loads(c.handle("settings stage"))
eq(a["digest"], DIGEST, "staged digest")
eq(a["broker_digest"], BROKER_DIGEST, "broker digest")
eq(a["staged"], sorted(VALUES), "keys")
eq(open(P).read(), before, "settings untouched while staged")
check("settings.json.new" in os.listdir(D), "staged file")
check("settings.json.tmp" not in os.listdir(D), "tmp renamed")
eq(json.loads(c.handle("settings"))["pending"], True, "pending")
eq((rt.wifi.joined, rt.applied), ([], 0), "not applied")

# -- a commit with another digest changes nothing
eq(c.handle("settings commit " + "0" * 64),
   "error: the digest does not match the staged settings; nothing changed", "wrong digest")
eq(open(P).read(), before, "still untouched")

# -- commit: the staged file becomes the settings, applied, every character exact
r = json.loads(c.handle("settings commit " + DIGEST))
eq(r["committed"], sorted(VALUES), "committed")
for k in VALUES:
    eq(rt.settings.get(k), VALUES[k], "exact " + k)
eq(Settings(P).values, rt.settings.values, "read again from flash")
eq(rt.wifi.joined, [(VALUES["ssid"], VALUES["password"])], "joined with it")
eq(rt.applied, 1, "broker applied")
eq(r["reboot_needed"], True, "new id: reboot")
check("settings.json.new" not in os.listdir(D), "staged file renamed")
eq(c.handle("settings commit " + DIGEST), "error: nothing staged (settings stage first)",
   "commit once")

# -- bad documents: refused, settings unchanged, no value quoted
after = open(P).read()
secret = VALUES["password"]
bad = [("zz", "error: a chunk is hex digits only; the document was dropped"),
       ("abc", "error: the settings document is not whole hex (a chunk was lost?)"),
       ("ff" + HEX[2:], "error: the settings document is not UTF-8 JSON"),
       (json.dumps({"password": "short"}).encode().hex(),
        "error: a WPA password has 8 to 63 characters"),
       (json.dumps({"port": secret}).encode().hex(), "error: port must be an integer"),
       (json.dumps({"colour": secret}).encode().hex(), "error: unknown setting colour"),
       (json.dumps([secret]).encode().hex(),
        "error: the settings document must be a non-empty object")]
for text, want in bad:
    ans = c.handle("settings chunk " + text)
    if not ans.startswith("error"):
        ans = c.handle("settings stage")
    eq(ans, want, "refused")
    check(secret not in ans, "no value quoted")
    eq(open(P).read(), after, "unchanged")
eq(c.handle("settings stage"),
   "error: no settings document received (settings chunk <hex> first)", "empty")
eq(c.handle("settings chunk " + "0" * 150 + " x"), "error: usage: settings | settings drop | "
   "settings chunk <hex> | settings stage | settings commit <digest>", "usage")
for _ in range(4096 // 150):
    c.handle("settings chunk " + "30" * 75)
eq(c.handle("settings chunk " + "30" * 75),
   "error: settings document over 4096 hex digits; dropped", "too long")
eq(json.loads(c.handle("settings"))["received"], 0, "dropped")
# the console's answers about the settings never hold a secret
for cmd in ("wifi", "broker", "settings", "help"):
    ans = c.handle(cmd)
    check(not ans.startswith("error"), cmd)
    check(secret not in ans and VALUES["pass"] not in ans, cmd)
done()
