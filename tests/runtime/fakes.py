"""Fakes for the runtime's hardware seams: WLAN, clock, NFC reader, indicator, serial port,
WDT, I2C; the network and its broker (with a fleet that stores and acks) are the MicroPython-safe
FakeNet and FakeClock of tests/firmware/mqttfake.py, shared with the firmware's
MQTT client tests."""
from __future__ import annotations

import asyncio

from firmware.runtime.ds3231 import dec2bcd
from tests.firmware.mqttfake import FakeClock, FakeNet


MADE: list = []  # every Hw, closed by tests/runtime/conftest.py after each test


class FakeWLAN:
    """network.WLAN(STA_IF): joins `join_polls` isconnected() calls after connect()."""

    def __init__(self, join_polls=1, rssi=-61):
        self.join_polls = join_polls
        self.rssi = rssi
        self.connected = False
        self.reachable = True
        self.connects: list[tuple[str, str]] = []
        self._wait = None
        self.is_active = False

    def active(self, on=None):
        if on is not None:
            self.is_active = on
        return self.is_active

    def connect(self, ssid, key):
        self.connects.append((ssid, key))
        self._wait = self.join_polls

    def disconnect(self):
        self.connected = False
        self._wait = None

    def scan(self):  # (ssid, bssid, channel, RSSI, security, hidden), as network.WLAN does
        return [(b"Voisin", b"\x02" * 6, 1, -80, 3, False),
                (b"Maison Durand", b"\x01" * 6, 6, -52, 3, False),
                (b"FreeWifi", b"\x03" * 6, 11, -70, 0, False)]

    def drop(self):
        self.connected = False
        self._wait = None

    def isconnected(self):
        if not self.connected and self._wait is not None and self.reachable:
            self._wait -= 1
            if self._wait <= 0:
                self.connected, self._wait = True, None
        return self.connected

    def status(self, what=None):
        assert what == "rssi"
        return self.rssi

    def ifconfig(self):
        return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")


class Clock:
    def __init__(self, t=1795420000, quality="synced"):
        self.t = t
        self.q = quality

    def time(self):
        return self.t

    def quality(self):
        return self.q


class SysTime:
    def __init__(self, t=0):
        self.t = t
        self.sets: list[int] = []

    def time(self):
        return self.t

    def set(self, t):
        self.t = t
        self.sets.append(t)


class Ntp:
    def __init__(self, t=1795420000):
        self.t = t
        self.fail = False
        self.calls = 0

    def time(self):
        self.calls += 1
        if self.fail:
            raise OSError(110, "ETIMEDOUT")
        return self.t


class FakeI2C:
    """A DS3231's register file behind machine.I2C's memory calls."""

    def __init__(self, addr=0x68):
        self.addr = addr
        self.regs = bytearray(0x13)
        self.present = True

    def _check(self, addr):
        if addr != self.addr or not self.present:
            raise OSError(19, "ENODEV")

    def readfrom_mem_into(self, addr, reg, buf):
        self._check(addr)
        buf[:] = self.regs[reg:reg + len(buf)]

    def writeto_mem(self, addr, reg, buf):
        self._check(addr)
        self.regs[reg:reg + len(buf)] = buf

    def set_regs(self, y, mo, d, h, mi, s, wd=1):
        self.regs[0:7] = bytes([dec2bcd(s), dec2bcd(mi), dec2bcd(h), wd, dec2bcd(d),
                                dec2bcd(mo), dec2bcd(y - 2000)])


class Reader:
    """read_uid() returns the queued items one per call (None: no card; an exception
    instance: raised)."""

    def __init__(self):
        self.queue: list = []
        self.fw = "PN532 v1.6"
        self.broken = False
        self.reads = 0

    def read_uid(self):
        self.reads += 1
        if not self.queue:
            return None
        x = self.queue.pop(0)
        if isinstance(x, Exception):
            raise x
        return x

    def version(self):
        if self.broken:
            raise OSError(110, "ETIMEDOUT")
        return self.fw


class Indicator:
    def __init__(self):
        self.calls: list[tuple] = []

    def set(self, color, hz):
        self.calls.append((color, hz))


class Serial:
    def __init__(self):
        self.inbuf = bytearray()
        self.out: list[str] = []

    def type(self, text):
        self.inbuf += text.encode()

    def ready(self):
        return len(self.inbuf) > 0

    def read1(self):
        c = bytes(self.inbuf[:1])
        del self.inbuf[:1]
        return c

    def write(self, s):
        self.out.append(s)

    def lines(self):
        return "".join(self.out).splitlines()


class WDT:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class Hw:
    """Everything Runtime takes from firmware/main.py's Hardware, faked."""

    def __init__(self, rtc=None):
        self.clock = FakeClock()  # the MQTT client's ticks and sleeps
        self.broker = self.net = FakeNet(self.clock)
        self.open_stream = self.net.open_stream
        self.loop = asyncio.new_event_loop()
        self._link = self._task = None
        MADE.append(self)
        self.default_id = "r1"
        self.wlan = FakeWLAN()
        self.systime = SysTime(1795420000)
        self.ntp = Ntp(1795420000)
        self.rtc = rtc
        self.reader = Reader()
        self.indicator = Indicator()
        self.battery = None
        self.wdt = WDT()
        self.serial = Serial()
        self.resets = 0
        self.rand = None
        self.intr = []  # what kbd_intr was given, in order

    def run_network(self, rt, ms):
        """The box's event loop for `ms` of the fake clock: the MQTT client's task (started
        for rt.link, stopped for a link a reboot left behind) does its network work."""
        if rt.link is not self._link:
            if self._link is not None:
                self._link.close()
            self._link = rt.link
            if rt.link is not None:
                self._task = self.loop.create_task(rt.link.run())
        self.loop.run_until_complete(self.clock.advance(ms))

    def close(self):
        """Stop the MQTT client's task and close the event loop (end of a test)."""
        if self._link is not None:
            self._link.close()
            self.loop.run_until_complete(self.clock.advance(500))
        for t in asyncio.all_tasks(self.loop):
            t.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def kbd_intr(self, c):
        self.intr.append(c)

    def reset(self):
        self.resets += 1
