# The runtime's non-asyncio parts on MicroPython: command parser and console, settings store,
# DS3231 BCD and calendar, back-off, watchdog, boot guard, line port, feedback, MQTT link.
import json
import os
import time

from _check import MP, check, eq, done, raises, tmpdir
from firmware.runtime.backoff import Backoff
from firmware.runtime.console import COMMANDS, Console, LinePort, split
from firmware.runtime.ds3231 import DS3231, bcd2dec, dec2bcd, from_unix, to_unix
from firmware.runtime.feedback import PATTERNS, Feedback
from firmware.runtime.safemode import BootGuard
from firmware.runtime.settings import DEFAULTS, Settings
from firmware.runtime.watchdog import Watchdog

D = tmpdir("runtime")

# -- command parser
eq(split('wifi set "Home Net" "p\\"w"'), ["wifi", "set", "Home Net", 'p"w'], "split quotes")
eq(split("  status  "), ["status"], "split spaces")
raises(ValueError, split, 'wifi set "open')

# -- settings
p = D + "/settings.json"
s = Settings(p)
eq((s.status, s.get("port")), ("ok", 1883), "defaults")
s.set("port", "8883")
s.update((("ssid", "home"), ("password", "secret12")))
eq(json.loads(open(p).read())["port"], 8883, "saved")
check("settings.json.tmp" not in os.listdir(D), "tmp renamed")
raises(ValueError, s.set, "port", "0")
raises(ValueError, s.set, "id", "a/b")
for bad in ("{nope", "[1]", '{"port": "x"}', ""):
    with open(p, "w") as f:
        f.write(bad)
    s = Settings(p)
    eq((s.status, s.values == DEFAULTS), ("settings_corrupt", True), "corrupt " + bad)

# -- DS3231
for n in range(100):
    eq(bcd2dec(dec2bcd(n)), n, "bcd")
eq(dec2bcd(59), 0x59, "bcd 59")
for t in (946684800, 951782400, 1795426549, 4102444799):
    eq(to_unix(*from_unix(t)[:6]), t, "unix round trip")
    if MP and time.gmtime(0)[0] == 1970:
        eq(tuple(from_unix(t)[:6]), tuple(time.gmtime(t)[:6]), "calendar")


class I2C:
    def __init__(self):
        self.regs = bytearray(0x13)

    def readfrom_mem_into(self, addr, reg, buf):
        for i in range(len(buf)):
            buf[i] = self.regs[reg + i]

    def writeto_mem(self, addr, reg, buf):
        for i in range(len(buf)):
            self.regs[reg + i] = buf[i]


i2c = I2C()
rtc = DS3231(i2c)
i2c.regs[0x0F] = 0x80
eq(rtc.time(), None, "oscillator stopped")
rtc.set_time(1795426549)
eq(rtc.time(), 1795426549, "rtc round trip")
eq(i2c.regs[0x0F] & 0x80, 0, "OSF cleared")

# -- back-off
b = Backoff(1000, 8000)
eq([b.next() for _ in range(6)], [1000, 2000, 4000, 8000, 8000, 8000], "backoff")
b.reset()
eq(b.next(), 1000, "backoff reset")


# -- watchdog
class WDT:
    feeds = 0

    def feed(self):
        WDT.feeds += 1


wd = Watchdog(WDT(), ("a", "b"), stall_ms=1000)
check(not wd.poll(0), "not fed before beats")
wd.beat(0, 0)
wd.beat(1, 0)
check(wd.poll(500), "fed")
wd.beat(0, 1500)
check(not wd.poll(1600), "b stalled")
eq(wd.stalled, "b", "stalled name")

# -- boot guard
g = BootGuard(D + "/boots")
for i in range(3):
    g.boot()
    check(not g.safe(), "boot %d normal" % (i + 1))
g.boot()
check(g.safe(), "4th boot safe")
g.clear()
eq(g.count(), 0, "cleared")


# -- console and line port
class Rt:
    def __init__(self):
        self.settings = Settings(D + "/s2.json")
        self.taps = self.link = self.core = None
        self.device_id = "r1"
        self.reboot_needed = False
        self.rebooted = 0

    def status(self):
        return {"mode": "safe"}

    def request_reboot(self):
        self.rebooted += 1


rt = Rt()
c = Console(rt)
for cmd in COMMANDS:
    a = c.handle(cmd)
    check(a == "ok" or a.startswith("error: ") or type(json.loads(a)) is dict, cmd)
eq(c.handle("nope"), "error: unknown command nope (try help)", "unknown")
eq(c.handle("broker set port 99999"), "error: port must be 1 to 65535", "bad port")
eq(c.handle("broker set id box-1"), "ok", "set id")
eq(rt.reboot_needed, True, "reboot needed")
eq(rt.rebooted, 1, "reboot asked")


class Stream:
    def __init__(self, data):
        self.data = bytearray(data)
        self.out = []

    def ready(self):
        return len(self.data) > 0

    def read1(self):
        c = bytes(self.data[:1])
        self.data = self.data[1:]
        return c

    def write(self, s):
        self.out.append(s)


st = Stream(b"\r\nstatus\r\n" + b"x" * 300 + b"\nhelp\n")
lp = LinePort(st)
eq(lp.poll(), "status", "line 1")
eq(lp.poll(), "help", "long line skipped")
eq(st.out, ["error: line too long\n"], "long line answered")


# -- feedback
class Ind:
    def __init__(self):
        self.calls = []

    def set(self, color, hz):
        self.calls.append((color, hz))


for kind in PATTERNS:
    ind = Ind()
    f = Feedback(ind)
    f.show(kind, 0)
    t = 0
    while f.busy():
        t += 50
        f.poll(t)
    eq(ind.calls[-1], (None, 0), "pattern ends off " + kind)
#@step
# -- the MQTT link: its client's outages are _mqtt_cases.py (test_mqtt_on_micropython.py)
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.link import MqttLink


class Clock:
    t = 1795420000

    def time(self):
        return self.t

    def quality(self):
        return "synced"


opened = []


async def open_stream(host, port, ssl=None):
    opened.append((host, port, ssl))
    raise OSError(113)


core = ReaderCore("r1", Journal(D + "/j", segment_records=8), Planning(), Clock())
# -- TLS: a link holding a CA it cannot use never connects in clear (docs/firmware.md, TLS)
tl = MqttLink(core, open_stream, "r1", "broker", 8883, backoff=Backoff(100, 400),
              ca="-----BEGIN CERTIFICATE-----\nbm8=\n-----END CERTIFICATE-----\n")
tl.poll(0)
eq((tl.client.host, tl.failures, tl.status(), tl.tls()), ("", 1, "down", True), "tls: no clear")
eq(opened, [], "nothing opened")
# the WebAssembly port has no ssl module; CPython has one, and refuses this CA
why = "no ssl module" if MP else "cannot load the CA certificate"
check(tl.last_error.startswith("ValueError: ") and why in tl.last_error, tl.last_error)
done()
