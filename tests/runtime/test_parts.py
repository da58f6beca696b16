"""Wi-Fi, back-off, time (NTP, DS3231, quality), settings, feedback, reader loop, watchdog."""
import json

import pytest

from firmware.runtime.backoff import Backoff
from firmware.runtime.clock import Clock
from firmware.runtime.ds3231 import DS3231, bcd2dec, dec2bcd, from_unix, to_unix
from firmware.runtime.feedback import PATTERNS, Feedback
from firmware.runtime.health import Battery
from firmware.runtime.settings import DEFAULTS, Settings
from firmware.runtime.taps import PN532Reader, TapLoop
from firmware.runtime.watchdog import Watchdog
from firmware.runtime.wifi import WifiLink
from tests.runtime.fakes import WDT, FakeI2C, FakeWLAN, Indicator, Ntp, Reader, SysTime


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
@pytest.mark.parametrize("n", [0, 7, 10, 59, 99])
def test_bcd(n):
    assert bcd2dec(dec2bcd(n)) == n
    assert dec2bcd(n) == int(str(n), 16)


def test_unix_conversion_against_the_calendar():
    import time
    for t in (946684800, 951868799, 951868800, 1795426549, 4102444799):
        g = time.gmtime(t)
        assert from_unix(t) == (g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec,
                                g.tm_wday + 1)
        assert to_unix(*from_unix(t)[:6]) == t


def test_ds3231_registers():
    i2c = FakeI2C()
    rtc = DS3231(i2c)
    i2c.regs[0x0F] = 0x80  # oscillator stopped: first power-up
    assert rtc.time() is None and rtc.lost_power()
    t = 1795426549  # 2026-11-22 ... UTC
    rtc.set_time(t)
    y, mo, d, h, mi, s, wd = from_unix(t)
    assert bytes(i2c.regs[0:7]) == bytes([dec2bcd(s), dec2bcd(mi), dec2bcd(h), wd, dec2bcd(d),
                                         dec2bcd(mo), dec2bcd(y - 2000)])
    assert i2c.regs[0x0F] & 0x80 == 0 and rtc.time() == t
    i2c.set_regs(2024, 2, 29, 23, 59, 58)
    assert rtc.time() == to_unix(2024, 2, 29, 23, 59, 58)
    i2c.regs[2] = 0x40 | 0x20 | 0x11  # 12-hour mode, PM, 11 -> 23 h
    assert rtc.read_regs()[3] == 23
    with pytest.raises(ValueError):
        rtc.set_time(to_unix(2100, 1, 1, 0, 0, 0))


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


# -- settings -------------------------------------------------------------------------------------
def test_settings_defaults_set_and_atomic_save(tmp_path):
    p = tmp_path / "settings.json"
    s = Settings(str(p))
    assert s.values == DEFAULTS and s.status == "ok" and not p.exists()
    s.set("port", "8883")
    s.set("host", "mqtt.example.org")
    assert json.loads(p.read_text())["port"] == 8883
    assert not (tmp_path / "settings.json.tmp").exists()
    assert Settings(str(p)).get("host") == "mqtt.example.org"
    for key, value, reason in [("port", "0", "port must be"), ("port", "x", "integer"),
                               ("id", "a/b", "id:"), ("nope", "1", "unknown"),
                               ("ssid", "x" * 65, "over 64")]:
        with pytest.raises(ValueError, match=reason):
            s.set(key, value)
    assert Settings(str(p)).get("port") == 8883  # a refused value changes nothing


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"port": "http"}', "\xff\xfe",
                                     '{"port": 70000}', ""])
def test_corrupt_settings_give_defaults_and_a_status(tmp_path, content):
    p = tmp_path / "settings.json"
    p.write_text(content)
    s = Settings(str(p))
    assert s.values == DEFAULTS and s.status == "settings_corrupt"
    s.set("ssid", "home")  # rewriting it repairs it
    assert Settings(str(p)).status == "ok"


def test_unknown_setting_keys_from_a_newer_firmware_are_ignored(tmp_path):
    p = tmp_path / "settings.json"
    p.write_text('{"host": "h", "future": 1}')
    s = Settings(str(p))
    assert s.status == "ok" and s.get("host") == "h" and "future" not in s.values


# -- feedback and the reader loop ------------------------------------------------------------------
class Core:
    """ReaderCore's tap() and clock, scripted."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.tapped = []
        self.clock = type("C", (), {"time": lambda self: 1795420000})()

    def tap(self, uid):
        self.tapped.append(uid)
        return self.answers.pop(0)


def test_every_feedback_kind_has_a_pattern_that_ends_off():
    for kind in ("in", "out", "unplanned_in", "unplanned_out", "unknown", "repeat", "full",
                 "error"):
        ind = Indicator()
        f = Feedback(ind)
        f.show(kind, 0)
        assert ind.calls[0] == PATTERNS[kind][0][:2]
        t = 0
        while f.busy():
            t += 50
            f.poll(t)
        assert ind.calls[-1] == (None, 0) and len(ind.calls) == len(PATTERNS[kind]) + 1
        assert t <= 1100


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


# -- watchdog --------------------------------------------------------------------------------------
def test_watchdog_fed_only_while_every_task_beats():
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
