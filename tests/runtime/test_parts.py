"""Wi-Fi, back-off with jitter, the clock (NTP, DS3231, quality), the reader loop, the battery.
(The DS3231's registers, settings, feedback patterns and the watchdog are tested on CPython and
MicroPython from one source: tests/firmware/test_runtime_parts.py.)"""

import pytest

from firmware.runtime.backoff import Backoff
from firmware.runtime.clock import Clock
from firmware.runtime.ds3231 import DS3231, to_unix
from firmware.runtime.feedback import Feedback
from firmware.runtime.health import Battery
from firmware.runtime.taps import PN532Reader, TapLoop
from firmware.runtime.wifi import WifiLink
from tests.runtime.fakes import FakeI2C, FakeWLAN, Indicator, Ntp, Reader, SysTime


# -- back-off and Wi-Fi ------------------------------------------------------------------------
def test_backoff_with_jitter_stays_in_range():
    b = Backoff(1000, 60000, jitter=0.25, rand=lambda: 0.5)
    assert [b.next() for _ in range(8)] == [875, 1750, 3500, 7000, 14000, 28000, 52500, 52500]
    b.reset()
    assert Backoff(1000, 60000).next() == 1000


def test_wifi_joins_then_backs_off_on_failures_and_counts_drops():
    wlan = FakeWLAN(join_polls=2)
    w = WifiLink(wlan, "home", "secret12", Backoff(2000, 16000))
    assert w.status() == "down"
    w.poll(0)
    assert wlan.connects == [("home", "secret12")] and w.status() == "joining"
    w.poll(100)
    assert w.up() and w.status() == "up" and w.rssi() == -61 and w.ip() == "192.168.1.50"
    wlan.drop()
    wlan.reachable = False  # the access point is gone
    attempts, now = [], 1000
    for _ in range(1200):
        n = len(wlan.connects)
        w.poll(now)
        if len(wlan.connects) > n:
            attempts.append(now)
        now += 100
    assert w.drops == 1
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[:4] == [15000 + 2000, 15000 + 4000, 15000 + 8000, 15000 + 16000]
    wlan.reachable = True
    w.poll(now + 60000)
    w.poll(now + 60100)
    w.poll(now + 60200)
    assert w.up() and w.backoff.failures == 0


def test_wifi_unconfigured_never_joins_and_configure_joins_at_once():
    wlan = FakeWLAN()
    w = WifiLink(wlan)
    w.poll(0)
    assert wlan.connects == [] and w.status() == "unconfigured" and w.rssi() is None
    w.configure("shop", "")
    w.poll(1)
    assert wlan.connects == [("shop", "")]


# -- time ----------------------------------------------------------------------------------------
def test_clock_quality_rtc_then_synced_and_rtc_written():
    i2c = FakeI2C()
    rtc = DS3231(i2c)
    i2c.set_regs(2026, 11, 22, 10, 0, 0)
    st, ntp = SysTime(0), Ntp(to_unix(2026, 11, 22, 10, 0, 7))
    c = Clock(st, ntp, rtc)
    assert c.quality() == "unsynced"
    c.start()
    assert c.quality() == "rtc" and c.time() == to_unix(2026, 11, 22, 10, 0, 0)
    c.poll(0, online=False)
    assert ntp.calls == 0 and c.quality() == "rtc"
    c.poll(0, online=True)
    assert c.quality() == "synced" and c.offset == 7 and rtc.time() == ntp.t
    c.poll(1000, online=True)
    assert ntp.calls == 1  # next sync in 6 h


def test_clock_unsynced_without_rtc_and_ntp_retry():
    st, ntp = SysTime(5), Ntp()
    ntp.fail = True
    c = Clock(st, ntp, None)
    c.start()
    c.poll(0, True)
    assert c.quality() == "unsynced" and c.ntp_errors == 1
    c.poll(30000, True)
    assert ntp.calls == 1  # retry after a minute
    ntp.fail = False
    c.poll(60000, True)
    assert c.quality() == "synced" and st.t == ntp.t


def test_clock_survives_a_missing_or_stopped_rtc():
    i2c = FakeI2C()
    i2c.present = False
    c = Clock(SysTime(0), None, DS3231(i2c))
    c.start()
    assert c.quality() == "unsynced" and c.rtc_errors == 1
    i2c.present = True
    i2c.regs[0x0F] = 0x80
    c = Clock(SysTime(0), None, DS3231(i2c))
    c.start()
    assert c.quality() == "unsynced"


# -- the reader loop ------------------------------------------------------------------
class Core:
    """ReaderCore's tap() and clock, scripted."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.tapped = []
        self.clock = type("C", (), {"time": lambda self: 1795420000})()

    def tap(self, uid):
        self.tapped.append(uid)
        return self.answers.pop(0)


def test_tap_feedback_is_shown_in_the_same_poll():
    reader, ind = Reader(), Indicator()
    core = Core(["in"])
    loop = TapLoop(reader, core, Feedback(ind))
    reader.queue = [b"\x04\xa1\xb2\xc3"]
    assert loop.poll(0) == "in"
    assert ind.calls == [("green", 2000)]  # before poll() returned: no wait for anything
    assert loop.last() == [(1795420000, "04A1B2C3", "in")]


def test_a_card_left_on_the_reader_is_one_tap():
    reader = Reader()
    core = Core(["in", "repeat"])
    loop = TapLoop(reader, core, Feedback(Indicator()))
    uid = b"\x04\xa1\xb2\xc3"
    reader.queue = [uid, uid, uid, uid, None]
    for t in range(0, 500, 100):
        loop.poll(t)
    assert core.tapped == [uid]
    reader.queue = [uid]
    loop.poll(2500)  # taken away for 2 s, tapped again
    assert core.tapped == [uid, uid]


def test_reader_errors_are_counted_and_polling_pauses():
    reader = Reader()
    loop = TapLoop(reader, Core([]), Feedback(Indicator()))
    reader.queue = [OSError(5, "EIO")]
    assert loop.poll(0) is None and loop.status == "error" and loop.errors == 1
    loop.poll(500)
    assert reader.reads == 1  # paused
    loop.poll(1000)
    assert reader.reads == 2 and loop.status == "ok"


def test_ring_keeps_the_last_eight_taps():
    reader = Reader()
    loop = TapLoop(reader, Core(["in"] * 12), Feedback(Indicator()))
    for i in range(12):
        reader.queue = [bytes([4, i, 2, 3])]
        loop.poll(i * 2000)
    last = loop.last()
    assert len(last) == 8 and last[0][1] == "04040203" and last[-1][1] == "040B0203"


def test_pn532_adapter_begins_once_and_again_after_an_error():
    class Chip:
        def __init__(self):
            self.begins, self.answers = 0, [b"\x01\x02\x03\x04", OSError("bus"), None]

        def begin(self):
            self.begins += 1

        def list_target(self, timeout_ms):
            x = self.answers.pop(0)
            if isinstance(x, Exception):
                raise x
            return x

        def get_firmware_version(self):
            return 0x32, 1, 6, 7
    chip = Chip()
    r = PN532Reader(chip)
    assert r.read_uid() == b"\x01\x02\x03\x04"
    with pytest.raises(OSError):
        r.read_uid()
    assert r.read_uid() is None and chip.begins == 2
    assert r.version() == "PN532 v1.6"


def test_battery_percent_from_the_divider():
    class Adc:
        uv = 1_900_000

        def read_uv(self):
            return self.uv
    adc = Adc()
    b = Battery(adc, ratio=2.0)
    assert b.millivolts() == 3800 and b.percent() == 58
    adc.uv = 2_200_000
    assert b.percent() == 100
    adc.uv = 1_000_000
    assert b.percent() == 0
