"""The runtime's non-asyncio parts, on CPython and on MicroPython from one source: the command
parser and console, the settings store, DS3231 BCD and calendar, back-off, watchdog, boot guard,
line port, feedback. (tests/runtime/test_parts.py tests more of them on CPython with the fakes
of the MQTT link's tests.)"""
import json
import os
import time

from firmware.runtime.backoff import Backoff
from firmware.runtime.console import COMMANDS, Console, LinePort, split
from firmware.runtime.ds3231 import DS3231, bcd2dec, dec2bcd, from_unix, to_unix
from firmware.runtime.feedback import PATTERNS, Feedback
from firmware.runtime.safemode import BootGuard
from firmware.runtime.settings import DEFAULTS, Settings
from firmware.runtime.watchdog import Watchdog
from tests.firmware.support import MP, raises, tmpdir


def test_the_command_parser():
    assert split('wifi set "Home Net" "p\\"w"') == ["wifi", "set", "Home Net", 'p"w']
    assert split("  status  ") == ["status"]
    raises(ValueError, split, 'wifi set "open')


def test_the_settings_store_saves_atomically_and_survives_corrupt_files():
    d = tmpdir("runtime")
    p = d + "/settings.json"
    s = Settings(p)
    assert (s.status, s.get("port")) == ("ok", 1883)  # the defaults
    s.set("port", "8883")
    s.update((("ssid", "home"), ("password", "secret12")))
    with open(p) as f:
        assert json.loads(f.read())["port"] == 8883
    assert "settings.json.tmp" not in os.listdir(d)  # renamed
    raises(ValueError, s.set, "port", "0")
    raises(ValueError, s.set, "id", "a/b")
    for bad in ("{nope", "[1]", '{"port": "x"}', ""):
        with open(p, "w") as f:
            f.write(bad)
        s = Settings(p)
        assert (s.status, s.values == DEFAULTS) == ("settings_corrupt", True), bad


def test_ds3231_bcd_and_calendar():
    for n in range(100):
        assert bcd2dec(dec2bcd(n)) == n
    assert dec2bcd(59) == 0x59
    for t in (946684800, 951782400, 1795426549, 4102444799):
        assert to_unix(*from_unix(t)[:6]) == t
        if MP and time.gmtime(0)[0] == 1970:
            assert tuple(from_unix(t)[:6]) == tuple(time.gmtime(t)[:6]), t
        elif not MP:
            assert tuple(from_unix(t)[:6]) == tuple(time.gmtime(t)[:6]), t


class I2C:
    def __init__(self):
        self.regs = bytearray(0x13)

    def readfrom_mem_into(self, addr, reg, buf):
        for i in range(len(buf)):
            buf[i] = self.regs[reg + i]

    def writeto_mem(self, addr, reg, buf):
        for i in range(len(buf)):
            self.regs[reg + i] = buf[i]


def test_ds3231_registers():
    i2c = I2C()
    rtc = DS3231(i2c)
    i2c.regs[0x0F] = 0x80
    assert rtc.time() is None  # the oscillator stopped
    rtc.set_time(1795426549)
    assert rtc.time() == 1795426549
    assert i2c.regs[0x0F] & 0x80 == 0  # OSF cleared


def test_backoff():
    b = Backoff(1000, 8000)
    assert [b.next() for _ in range(6)] == [1000, 2000, 4000, 8000, 8000, 8000]
    b.reset()
    assert b.next() == 1000


class WDT:
    feeds = 0

    def feed(self):
        WDT.feeds += 1


def test_the_watchdog_is_fed_only_while_every_task_beats():
    wd = Watchdog(WDT(), ("a", "b"), stall_ms=1000)
    assert not wd.poll(0)  # not fed before the beats
    wd.beat(0, 0)
    wd.beat(1, 0)
    assert wd.poll(500)
    wd.beat(0, 1500)
    assert not wd.poll(1600)  # b stalled
    assert wd.stalled == "b"


def test_the_boot_guard():
    g = BootGuard(tmpdir("runtime") + "/boots")
    for i in range(3):
        g.boot()
        assert not g.safe(), i + 1
    g.boot()
    assert g.safe()  # the 4th boot is a safe one
    g.clear()
    assert g.count() == 0


class Rt:
    def __init__(self, d):
        self.settings = Settings(d + "/s2.json")
        self.taps = self.link = self.core = None
        self.device_id = "r1"
        self.reboot_needed = False
        self.rebooted = 0

    def status(self):
        return {"mode": "safe"}

    def request_reboot(self):
        self.rebooted += 1


def test_every_console_command_answers():
    rt = Rt(tmpdir("runtime"))
    c = Console(rt)
    for cmd in COMMANDS:
        a = c.handle(cmd)
        assert a == "ok" or a.startswith("error: ") or type(json.loads(a)) is dict, cmd
    assert c.handle("nope") == "error: unknown command nope (try help)"
    assert c.handle("broker set port 99999") == "error: port must be 1 to 65535"
    assert c.handle("broker set id box-1") == "ok"
    assert rt.reboot_needed is True and rt.rebooted == 1


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


def test_the_line_port_skips_and_answers_a_line_too_long():
    st = Stream(b"\r\nstatus\r\n" + b"x" * 300 + b"\nhelp\n")
    lp = LinePort(st)
    assert lp.poll() == "status"
    assert lp.poll() == "help"  # the long line skipped
    assert st.out == ["error: line too long\n"]


class Ind:
    def __init__(self):
        self.calls = []

    def set(self, color, hz):
        self.calls.append((color, hz))


def test_every_feedback_pattern_ends_off():
    for kind in PATTERNS:
        ind = Ind()
        f = Feedback(ind)
        f.show(kind, 0)
        t = 0
        while f.busy():
            t += 50
            f.poll(t)
        assert ind.calls[-1] == (None, 0), kind
