"""A fake clock and a fake network with an MQTT 3.1.1 broker behind it, for the firmware's
MQTT client; MicroPython-safe, so the same tests run under pytest and on the real
MicroPython (WebAssembly): tests/firmware/test_mqtt_client.py, and the link's and the runtime's
tests (tests/runtime) on CPython.

FakeClock: ticks() and sleep_ms() in virtual time; `await clock.advance(ms)` runs every task
until the clock has moved `ms` (each sleeper wakes at its tick, in order).
FakeNet.open_stream(host, port, ssl) is the seam firmware/runtime/net.py fills on the box.
FakeCluster is several such brokers at their own addresses, in front of one fleet (a
cluster's nodes): each can be stopped, silenced or refuse on its own.
The broker parses every byte the client writes, answers as mosquitto does (CONNACK, SUBACK,
PUBACK, PINGRESP, retained messages, the will on a lost connection), and plays the fleet:
clock events are stored by (device, seq) and acked with the highest gap-free seq. Its
`mode` says how the network behaves: "ok", "down" (connect refused at once), "hang" (connect
never completes), "silent" (TCP accepted, nothing ever answered), "stall" (the broker stops
reading: drain() waits), "flap" (CONNACK, then the connection dies). The streams have no blocking call: every wait is awaited.
"""
import asyncio
import json


class FakeClock:
    def __init__(self, now=0):
        self.now = now
        self._sleepers = []

    def ticks(self):
        return self.now

    async def sleep_ms(self, ms):
        ev = asyncio.Event()
        self._sleepers.append((self.now + ms, ev))
        await ev.wait()

    async def advance(self, ms):
        end = self.now + ms
        while True:
            for _ in range(4):
                await asyncio.sleep(0)
            due = [s for s in self._sleepers if s[0] <= self.now]
            if due:
                for s in due:
                    self._sleepers.remove(s)
                    s[1].set()
                continue
            if self.now >= end:
                return
            nxt = end
            for s in self._sleepers:
                if s[0] < nxt:
                    nxt = s[0]
            self.now = nxt


class _Seam:
    """Only the asyncio stream subset exists: anything else the client reaches for (recv,
    settimeout, setblocking, a socket: a call that could block) fails the test."""

    def __getattr__(self, name):
        raise AssertionError("the client asked a stream for %r: not in the non-blocking seam"
                             % name)


class _Pipe(_Seam):
    """The client's reader: bytes the broker sent."""

    def __init__(self):
        self.buf = b""
        self.closed = False
        self.ev = asyncio.Event()

    def put(self, b):
        self.buf += b
        self.ev.set()

    def close(self):
        self.closed = True
        self.ev.set()

    async def read(self, n):
        while not self.buf and not self.closed:
            self.ev.clear()
            await self.ev.wait()
        b, self.buf = self.buf[:n], self.buf[n:]
        return b

    async def readexactly(self, n):
        while len(self.buf) < n and not self.closed:
            self.ev.clear()
            await self.ev.wait()
        if len(self.buf) < n:
            raise EOFError("end of stream")
        b, self.buf = self.buf[:n], self.buf[n:]
        return b


class _Writer(_Seam):
    def __init__(self, session):
        self.s = session

    def write(self, b):
        if self.s.dead:
            raise OSError(104, "ECONNRESET")
        self.s.feed(bytes(b))

    async def drain(self):  # what was written is gone already; the reader sees the end
        while self.s.net.mode == "stall" and not self.s.dead:
            await self.s.net.clock.sleep_ms(1000)

    def close(self):
        self.s.end(False)

    async def wait_closed(self):
        pass


def _s(b, i):
    n = b[i] << 8 | b[i + 1]
    return b[i + 2:i + 2 + n], i + 2 + n


def _hdr(kind, n):
    out = bytearray((kind,))
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def publish_packet(topic, payload, qos=0, retain=False, pid=1, dup=False):
    t = topic.encode()
    body = bytes((len(t) >> 8, len(t) & 0xFF)) + t
    if qos:
        body += bytes((pid >> 8, pid & 0xFF))
    body += payload
    return _hdr(0x30 | (8 if dup else 0) | qos << 1 | (1 if retain else 0), len(body)) + body


def _match(pattern, topic):
    if pattern.endswith("#"):
        return topic.startswith(pattern[:-1])
    return pattern == topic


class Session:
    """One TCP connection, as the broker sees it."""

    def __init__(self, net):
        self.net = net
        self.pipe = _Pipe()
        self.inbuf = b""
        self.dead = False
        self.connected = False
        self.client_id = self.user = self.password = None
        self.keepalive = 0
        self.clean = None
        self.will = None
        self.subs = []
        self.pid = 0
        self.puback_withheld = []

    def send(self, b):
        if not self.dead:
            self.pipe.put(b)

    def feed(self, b):
        self.inbuf += b
        while True:
            buf = self.inbuf
            if len(buf) < 2:
                return
            n = sh = 0
            i = 1
            while True:
                if i >= len(buf):
                    return
                c = buf[i]
                n |= (c & 0x7F) << sh
                i += 1
                if not c & 0x80:
                    break
                sh += 7
            if len(buf) < i + n:
                return
            kind, body = buf[0], buf[i:i + n]
            self.inbuf = buf[i + n:]
            self.net.packets.append((self, kind, body))
            self.handle(kind, body)

    def handle(self, kind, body):
        net = self.net
        t = kind & 0xF0
        if t == 0x10:
            self.on_connect(body)
        elif net.mode == "silent":
            return
        elif t == 0x80:
            pid = body[:2]
            i = 2
            granted = b""
            while i < len(body):
                f, i = _s(body, i)
                self.subs.append(f.decode())
                granted += b"\x80" if net.refuse_subs else bytes((min(body[i], 1),))
                i += 1
            self.send(_hdr(0x90, 2 + len(granted)) + pid + granted)
            for topic in net.retained:
                if any(_match(f, topic) for f in self.subs):
                    self.deliver(topic, net.retained[topic], True)
        elif t == 0x30:
            qos = (kind >> 1) & 3
            topic, i = _s(body, 0)
            pid = body[i:i + 2] if qos else b""
            payload = body[i + len(pid):]
            if qos == 1:
                if net.withhold_pubacks:
                    self.puback_withheld.append(pid)
                else:
                    self.send(b"\x40\x02" + pid)
            net.receive(topic.decode(), payload, bool(kind & 1), qos, bool(kind & 8))
        elif t == 0x40:
            net.pubacks += 1
        elif t == 0xC0:
            net.pings += 1
            self.send(b"\xd0\x00")
        elif t == 0xE0:
            self.will = None
            self.end(False)

    def on_connect(self, body):
        net = self.net
        name, i = _s(body, 0)
        flags = body[i + 1]
        self.keepalive = body[i + 2] << 8 | body[i + 3]
        i += 4
        cid, i = _s(body, i)
        self.client_id = cid.decode()
        self.clean = bool(flags & 2)
        if flags & 4:
            wt, i = _s(body, i)
            wm, i = _s(body, i)
            self.will = (wt.decode(), wm, bool(flags & 0x20), (flags >> 3) & 3)
        if flags & 0x80:
            u, i = _s(body, i)
            self.user = u.decode()
        if flags & 0x40:
            p, i = _s(body, i)
            self.password = p.decode()
        net.connect_packets.append((name, body, flags))
        if net.mode == "silent":
            return
        if net.users is not None and net.users.get(self.user) != self.password:
            self.send(b"\x20\x02\x00\x04")
            self.will = None
            self.end(False)
            return
        self.connected = True
        self.send(b"\x20\x02\x00\x00")
        if net.mode == "flap":  # accepted, then the connection dies at once
            self.end(True)

    def deliver(self, topic, payload, retain=False):
        self.pid = self.pid % 65535 + 1
        self.send(publish_packet(topic, payload, 1, retain, self.pid))

    def end(self, will=True):
        """The connection closes; without a DISCONNECT the broker publishes the will."""
        if self.dead:
            return
        self.dead = True
        self.pipe.close()
        if self in self.net.sessions:
            self.net.sessions.remove(self)
        if will and self.will:
            t, m, retain, qos = self.will
            self.net.receive(t, m, retain, qos, False)


class FakeNet:
    def __init__(self, clock=None, users=None, fleet=None):
        self.clock = clock or FakeClock()
        self.mode = "ok"
        self.users = users  # {user: password}, or None: anyone gets in
        self.sessions = []
        self.opened = []  # (host, port) of every stream opened
        self.contexts = []  # the ssl argument of each open_stream
        self.pending = 0  # connects in progress now
        self.packets = []  # (session, first byte, body) of everything the clients sent
        self.connect_packets = []
        self.published = []  # (topic, payload, retain, qos, dup)
        self.retained = {}
        self.stored = {} if fleet is None else fleet  # (device, seq) -> event: the fleet's
        self.stores = 0  # events this broker handed the fleet (a resend counts again)
        self.fleet_acks = True
        self.withhold_pubacks = False
        self.refuse_subs = False
        self.pubacks = 0
        self.pings = 0

    async def open_stream(self, host, port, ssl=None):
        self.opened.append((host, port))
        self.contexts.append(ssl)
        if self.mode == "down":
            raise OSError(113, "EHOSTUNREACH")
        self.pending += 1
        try:
            while self.mode == "hang":
                await self.clock.sleep_ms(1000)
        finally:
            self.pending -= 1
        s = Session(self)
        self.sessions.append(s)
        return s.pipe, _Writer(s)

    def live(self):
        return [s for s in self.sessions if s.connected]

    def kill(self):
        """Every connection dies (the broker restarts): wills go out."""
        for s in list(self.sessions):
            s.end(True)

    def send(self, topic, payload, retain=False):
        """The fleet publishes `payload` on `topic` (QoS 1)."""
        self.receive(topic, payload, retain, 1, False)

    def inject(self, raw):
        """Raw bytes to every live client, as a broker gone wrong would send them."""
        for s in self.live():
            s.send(raw)

    def receive(self, topic, payload, retain, qos, dup):
        self.published.append((topic, payload, retain, qos, dup))
        if retain:
            self.retained[topic] = payload
        for s in self.live():
            if any(_match(f, topic) for f in s.subs):
                s.deliver(topic, payload)
        parts = topic.split("/")
        if parts[3:] == ["up", "clock"]:
            dev = parts[2]
            for e in json.loads(payload)["events"]:
                self.stored[(dev, e["seq"])] = e
                self.stores += 1
            if self.fleet_acks:
                ack = 0
                while (dev, ack + 1) in self.stored:
                    ack += 1
                self.send("tg/v1/%s/down/ack" % dev,
                          json.dumps({"ack": ack, "rejected": []}).encode())


class FakeCluster:
    """Brokers at `addrs` [(host, port)] on one network and one clock, in front of one fleet
    (`stored`, shared: a node acks what the fleet holds, whichever node it came through).
    open_stream goes to the broker at (host, port); an address without one refuses."""

    def __init__(self, addrs, clock=None):
        self.clock = clock or FakeClock()
        self.stored = {}
        self.nodes = {}
        for a in addrs:
            self.nodes[a] = FakeNet(self.clock, fleet=self.stored)
        self.opened = []  # (host, port, tick) of every stream opened

    async def open_stream(self, host, port, ssl=None):
        self.opened.append((host, port, self.clock.now))
        node = self.nodes.get((host, port))
        if node is None:
            raise OSError(111, "ECONNREFUSED")
        return await node.open_stream(host, port, ssl)

    def node(self, host, port):
        return self.nodes[(host, port)]

    def stop(self, host, port):
        """The node dies: its connections end (wills go out) and connects are refused."""
        n = self.nodes[(host, port)]
        n.mode = "down"
        n.kill()
