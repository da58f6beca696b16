"""The runtime's non-asyncio parts, on CPython and on MicroPython from one source: the command
parser and console, the settings store, DS3231 BCD and calendar, back-off, watchdog, boot guard,
line port, feedback. (Wi-Fi, the clock, the tap loop and the battery: tests/runtime/test_parts.py,
on CPython with the fakes of the runtime's other tests.)"""
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


def test_settings_defaults_set_and_atomic_save():
    d = tmpdir("runtime")
    p = d + "/settings.json"
    s = Settings(p)
    assert s.values == DEFAULTS and s.status == "ok" and "settings.json" not in os.listdir(d)
    s.set("port", "8883")
    s.set("host", "mqtt.example.org")
    with open(p) as f:
        assert json.loads(f.read())["port"] == 8883
    assert "settings.json.tmp" not in os.listdir(d)
    assert Settings(p).get("host") == "mqtt.example.org"
    for key, value, reason in [("port", "0", "port must be"), ("port", "x", "integer"),
                               ("id", "a/b", "id:"), ("nope", "1", "unknown"),
                               ("ssid", "x" * 65, "over 64")]:
        with raises(ValueError) as e:
            s.set(key, value)
        assert reason in str(e.value), (reason, str(e.value))
    assert Settings(p).get("port") == 8883  # a refused value changes nothing


def test_corrupt_settings_give_defaults_and_a_status_and_a_write_repairs_them():
    d = tmpdir("runtime")
    p = d + "/settings.json"
    for content in ["{not json", "[1, 2]", '{"port": "http"}', "\xff\xfe", '{"port": 70000}',
                    ""]:
        with open(p, "w") as f:
            f.write(content)
        s = Settings(p)
        assert s.values == DEFAULTS and s.status == "settings_corrupt", content
        s.set("ssid", "home")  # rewriting it repairs it
        assert Settings(p).status == "ok", content


def test_unknown_setting_keys_from_a_newer_firmware_are_ignored():
    p = tmpdir("runtime") + "/settings.json"
    with open(p, "w") as f:
        f.write('{"host": "h", "future": 1}')
    s = Settings(p)
    assert s.status == "ok" and s.get("host") == "h" and "future" not in s.values


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
        assert dec2bcd(n) == int(str(n), 16)
    assert dec2bcd(59) == 0x59
    # the calendar of the interpreter, where it counts from 1970 (CPython; MicroPython on the
    # WebAssembly port; an ESP32 counts from 2000)
    epoch_1970 = time.gmtime(0)[0] == 1970
    assert epoch_1970 or MP
    for t in (946684800, 951782400, 951868799, 951868800, 1795426549, 4102444799):
        assert to_unix(*from_unix(t)[:6]) == t
        if epoch_1970:
            g = time.gmtime(t)
            assert from_unix(t) == (g[0], g[1], g[2], g[3], g[4], g[5], g[6] + 1), t


class I2C:
    """A DS3231's register file behind machine.I2C's memory calls."""

    def __init__(self):
        self.regs = bytearray(0x13)

    def readfrom_mem_into(self, addr, reg, buf):
        for i in range(len(buf)):
            buf[i] = self.regs[reg + i]

    def writeto_mem(self, addr, reg, buf):
        for i in range(len(buf)):
            self.regs[reg + i] = buf[i]

    def set_regs(self, y, mo, d, h, mi, s, wd=1):
        self.regs[0:7] = bytes([dec2bcd(s), dec2bcd(mi), dec2bcd(h), wd, dec2bcd(d),
                                dec2bcd(mo), dec2bcd(y - 2000)])


def test_ds3231_registers():
    i2c = I2C()
    rtc = DS3231(i2c)
    i2c.regs[0x0F] = 0x80  # oscillator stopped: first power-up
    assert rtc.time() is None and rtc.lost_power()
    t = 1795426549
    rtc.set_time(t)
    y, mo, d, h, mi, s, wd = from_unix(t)
    assert bytes(i2c.regs[0:7]) == bytes([dec2bcd(s), dec2bcd(mi), dec2bcd(h), wd, dec2bcd(d),
                                         dec2bcd(mo), dec2bcd(y - 2000)])
    assert i2c.regs[0x0F] & 0x80 == 0 and rtc.time() == t  # OSF cleared
    i2c.set_regs(2024, 2, 29, 23, 59, 58)
    assert rtc.time() == to_unix(2024, 2, 29, 23, 59, 58)
    i2c.regs[2] = 0x40 | 0x20 | 0x11  # 12-hour mode, PM, 11 -> 23 h
    assert rtc.read_regs()[3] == 23
    raises(ValueError, rtc.set_time, to_unix(2100, 1, 1, 0, 0, 0))


def test_backoff():
    b = Backoff(1000, 8000)
    assert [b.next() for _ in range(6)] == [1000, 2000, 4000, 8000, 8000, 8000]
    b.reset()
    assert b.next() == 1000


class WDT:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def test_the_watchdog_is_fed_only_while_every_task_beats():
    wd = Watchdog(WDT(), ("a", "b"), stall_ms=1000)
    assert not wd.poll(0)  # not fed before the beats
    wd.beat(0, 0)
    wd.beat(1, 0)
    assert wd.poll(500)
    wd.beat(0, 1500)
    assert not wd.poll(1600)  # b stalled
    assert wd.stalled == "b"
    wdt = WDT()
    wd = Watchdog(wdt, ("net", "console", "reader"), stall_ms=5000)
    assert not wd.poll(0) and wdt.feeds == 0  # nobody has beaten yet
    for i in range(3):
        wd.beat(i, 0)
    assert wd.poll(1000) and wdt.feeds == 1
    wd.beat(0, 6000)
    wd.beat(1, 6000)  # the reader task stopped at t=0
    assert not wd.poll(6000) and wd.stalled == "reader" and wdt.feeds == 1
    wd.beat(2, 6500)
    assert wd.poll(7000) and wdt.feeds == 2 and wd.stalled == ""


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


def test_every_feedback_kind_has_a_pattern_within_1_1_s():
    for kind in ("in", "out", "unplanned_in", "unplanned_out", "unknown", "repeat", "full",
                 "error"):
        ind = Ind()
        f = Feedback(ind)
        f.show(kind, 0)
        assert ind.calls[0] == PATTERNS[kind][0][:2]
        t = 0
        while f.busy():
            t += 50
            f.poll(t)
        assert ind.calls[-1] == (None, 0) and len(ind.calls) == len(PATTERNS[kind]) + 1, kind
        assert t <= 1100, kind
