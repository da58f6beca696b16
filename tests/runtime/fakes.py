"""Fakes for the runtime's hardware seams: WLAN, an umqtt-like client over a fake broker
with a fleet that stores and acks, clock, NFC reader, indicator, serial port, WDT, I2C."""
from __future__ import annotations

import json

from firmware.runtime.ds3231 import dec2bcd


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


class FakeBroker:
    """What the broker and the fleet do: retained messages, subscriptions, and a fleet that
    stores clock events by seq and acks the highest gap-free seq (QoS 1 may duplicate)."""

    def __init__(self):
        self.up = True
        self.retained: dict[str, bytes] = {}
        self.stored: dict[tuple[str, int], dict] = {}
        self.published: list[tuple[str, bytes, bool, int]] = []
        self.clients: list[FakeClient] = []
        self.fleet_acks = True

    def connected(self):
        return [c for c in self.clients if c.connected]

    def receive(self, client, topic, msg, retain, qos):
        self.published.append((topic, msg, retain, qos))
        if retain:
            self.retained[topic] = msg
        parts = topic.split("/")
        if parts[3:] == ["up", "clock"]:
            dev = parts[2]
            for e in json.loads(msg)["events"]:
                self.stored[(dev, e["seq"])] = e
            if self.fleet_acks:
                ack = 0
                while (dev, ack + 1) in self.stored:
                    ack += 1
                self.deliver("tg/v1/%s/down/ack" % dev,
                             json.dumps({"ack": ack, "rejected": []}).encode())

    def deliver(self, topic, msg):
        for c in self.connected():
            for pattern in c.subs:
                if pattern.endswith("#") and topic.startswith(pattern[:-1]) or pattern == topic:
                    c.inbox.append((topic.encode(), msg))

    def lose(self, client):
        """The connection dies without a DISCONNECT: the will is published."""
        if client.connected:
            client.connected = False
            if client.will:
                t, m, retain, qos = client.will
                self.receive(None, t, m, retain, qos)


class FakeSock:
    def __init__(self, client):
        self.client = client

    def close(self):
        self.client.broker.lose(self.client)


class FakeClient:
    """The umqtt.simple API. `faults` is a shared list of method names: the next call of
    that method raises OSError (and kills the connection, as a dead socket would)."""

    def __init__(self, broker, faults, client_id, host, port, user, password, keepalive):
        self.broker = broker
        self.faults = faults
        self.client_id, self.host, self.port = client_id, host, port
        self.user, self.password, self.keepalive = user, password, keepalive
        self.cb = None
        self.will = None
        self.connected = False
        self.subs: list[str] = []
        self.inbox: list[tuple[bytes, bytes]] = []
        self.pings = 0
        self.calls: list[str] = []
        self.sock = FakeSock(self)
        broker.clients.append(self)

    def _io(self, name):
        self.calls.append(name)
        if name in self.faults:
            self.faults.remove(name)
            self.broker.lose(self)
            raise OSError(104, "ECONNRESET")
        if name != "connect" and not self.connected:
            raise OSError(104, "ECONNRESET")
        if not self.broker.up:
            self.broker.lose(self)
            raise OSError(113, "EHOSTUNREACH")

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.will = (topic, msg, retain, qos)

    def connect(self, clean_session=True, timeout=None):
        self._io("connect")
        self.connected = True
        self.clean_session = clean_session
        return False

    def subscribe(self, topic, qos=0):
        self._io("subscribe")
        self.subs.append(topic)

    def publish(self, topic, msg, retain=False, qos=0):
        self._io("publish")
        self.broker.receive(self, topic, msg, retain, qos)
        if qos == 1:  # umqtt waits for the PUBACK and handles what comes meanwhile
            self._deliver_one()

    def _deliver_one(self):
        if self.inbox:
            t, m = self.inbox.pop(0)
            self.cb(t, m)
            return 0x30
        return None

    def check_msg(self):
        self._io("check_msg")
        return self._deliver_one()

    def ping(self):
        self._io("ping")
        self.pings += 1

    def disconnect(self):
        self.calls.append("disconnect")
        self.connected = False  # clean: no will


class Factory:
    def __init__(self, broker):
        self.broker = broker
        self.faults: list[str] = []
        self.made: list[FakeClient] = []
        self.contexts: list = []  # the `ssl` context of each client made (None: in clear)

    def __call__(self, *args, ssl=None):
        c = FakeClient(self.broker, self.faults, *args)
        self.made.append(c)
        self.contexts.append(ssl)
        return c


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

    def __init__(self, broker=None, rtc=None):
        self.broker = broker or FakeBroker()
        self.default_id = "r1"
        self.wlan = FakeWLAN()
        self.mqtt_factory = Factory(self.broker)
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

    def kbd_intr(self, c):
        self.intr.append(c)

    def reset(self):
        self.resets += 1
