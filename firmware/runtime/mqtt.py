"""A non-blocking MQTT 3.1.1 client on asyncio streams (learned from mqtt_as, not copied).

One task, `run()`, owns the connection: it opens a stream through `open_stream` (net.py on
the box, a fake network in tests), sends CONNECT with the user, password and a retained last
will, waits for the CONNACK, subscribes, publishes the retained `online`, retransmits with DUP
what was in flight when the last connection died, then serves: a reader task handles what
the broker sends, a writer task sends the outgoing queue, and run() watches both. Any error,
a silent broker (nothing for 1.5 keepalives), Wi-Fi going or a new configuration ends the
connection. Nothing here raises to the caller.

Several broker addresses (`configure(..., brokers=[(host, port), ...])`, a cluster's nodes)
are used round robin: a connect that fails, or a connection that drops or goes silent, moves
to the next address at once, and the back-off is waited once per full round, when every
address has failed in a row; a connection that served for _SERVED_MS ends the round (one
dropped at once does not, or a cluster whose nodes all accept and drop would be hammered).
With one address (host and port) each failure is a full round: the back-off after each, as
before.

The callers never wait: publish() puts a message in a bounded queue and returns, get()
takes one received message or None. What does not fit is dropped and counted; the journal
keeps every clock event until the fleet's ack, so a drop costs a resend, never an event.
"""
import asyncio

from firmware.runtime.backoff import Backoff
from firmware.ticks import due, ticks_add, ticks_diff, ticks_ms

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

_WATCH_MS = const(100)  # how often run() looks at the connection and at the settings
_INFLIGHT = const(4)  # QoS 1 messages sent and not yet PUBACKed
_CHUNK = const(128)  # bytes read at once while skipping an oversized packet
_SERVED_MS = const(30000)  # a connection up this long was a working broker: a new round
_REFUSED = ("", "bad protocol version", "client id rejected", "server unavailable",
            "bad user name or password", "not authorized")


class RealClock:
    """ticks() and sleep_ms() of the box (tests pass a fake clock with the same two)."""

    def ticks(self):
        return ticks_ms()

    def sleep_ms(self, ms):
        f = getattr(asyncio, "sleep_ms", None)
        return f(ms) if f is not None else asyncio.sleep(ms / 1000)


def _log(msg):
    print("# mqtt:", msg)


def _put_len(buf, i, n):
    """Write the remaining length `n` at buf[i:]; return the index after it."""
    while n > 0x7F:
        buf[i] = (n & 0x7F) | 0x80
        n >>= 7
        i += 1
    buf[i] = n
    return i + 1


def _str(s):
    if type(s) is str:
        s = s.encode()
    return bytes((len(s) >> 8, len(s) & 0xFF)) + s


class MqttClient:
    def __init__(self, open_stream, client_id, keepalive=60, backoff=None, timeout_ms=5000,
                 out_max=8, in_max=8, max_in=1536, clock=None, log=None):
        self.open_stream = open_stream
        self.client_id = client_id
        self.keepalive = keepalive
        self.backoff = backoff or Backoff(1000, 60000)
        self.timeout_ms = timeout_ms  # from opening the stream to the CONNACK
        self.out_max, self.in_max, self.max_in = out_max, in_max, max_in
        self.clock = clock or RealClock()
        self.log = log or _log
        self.host, self.port, self.user, self.password, self.ssl = "", 1883, "", "", None
        self.brokers = []  # [(host, port)] tried in turn; host and port: the one in use
        self._at = 0  # index in brokers of host and port
        self._failed = 0  # addresses failed in a row: a round is len(brokers)
        self._up_at = 0  # tick of the last connection's CONNACK
        self.will = None  # (topic, payload, retain, qos)
        self.birth = None  # published once connected (retained `online`)
        self.subs = []  # [(topic filter, qos)], subscribed again after every connect
        self.online = True  # Wi-Fi as the owner last said
        self.state = "down"  # "down", "connecting", "up"
        self.session = 0  # connections made: a new one may have lost what was not acked
        self._out = []  # (topic, payload, retain, qos) waiting to be written
        self._in = []  # (topic, payload) received, waiting for get()
        self._flight = {}  # pid -> (topic, payload, retain): QoS 1 sent, no PUBACK yet
        self._pid = 0
        self._hdr = bytearray(5)  # a fixed header: type and up to 4 length bytes
        self._r = self._w = None
        self._end = None  # why the connection ends, set by its reader or writer
        self._retry = None  # tick of the next attempt
        self._reconf = False
        self._stop = False
        self._kick = asyncio.Event()  # something to write
        self._last_rx = self._last_tx = 0
        # counted, for the console's `counters` and health
        self.connects = self.failures = self.refused = self.timeouts = self.drops = 0
        self.failovers = 0  # moves to the next broker address
        self.published = self.received = self.retransmitted = self.pings = 0
        self.out_dropped = self.in_dropped = 0
        self.malformed = self.unknown_acks = self.oversize = self.sub_refused = 0
        self.last_error = ""

    # -- what the owner calls; none of it waits --------------------------------------------
    def configure(self, host, port, user="", password="", ssl=None, brokers=None):
        """New broker settings: the connection in use ends and the next attempt is now, at
        the first address. `brokers`, when not empty, replaces host and port."""
        self.brokers = [(h, p) for h, p in brokers] if brokers else [(host, port)]
        self._at = self._failed = 0
        self.host, self.port = self.brokers[0]
        self.user, self.password, self.ssl = user, password, ssl
        self._reconf = True
        self._retry = None
        self.backoff.reset()

    def up(self):
        return self.state == "up"

    def publish(self, topic, payload, retain=False, qos=0):
        """Queue a message; False (counted in out_dropped) when the queue is full."""
        if len(self._out) >= self.out_max:
            self.out_dropped += 1
            return False
        self._out.append((topic, payload, retain, qos))
        self._kick.set()
        return True

    def room(self):
        return self.out_max - len(self._out)

    def get(self):
        """(topic, payload) of the oldest message received, or None."""
        return self._in.pop(0) if self._in else None

    def stop(self):
        self._stop = True

    # -- the connection's life --------------------------------------------------------------
    async def run(self):
        clk = self.clock
        while not self._stop:
            if not self.host or not self.online or not due(clk.ticks(), self._retry):
                self._reconf = False
                await clk.sleep_ms(_WATCH_MS)
                continue
            self._reconf = False
            why = await self._connect()
            if why == "abandoned":  # new settings, Wi-Fi gone: no failure of the broker's
                continue
            if why:
                self.failures += 1
                self._fail(why)
                continue
            why = await self._serve()
            if ticks_diff(clk.ticks(), self._up_at) >= _SERVED_MS:
                self._failed = 0
            self._close(why == "")
            if why:
                self.drops += 1
                self._fail(why)

    def _fail(self, why):
        self.last_error = why
        self.state = "down"
        n = len(self.brokers)
        self._failed += 1
        if n > 1:
            self._at = (self._at + 1) % n
            self.host, self.port = self.brokers[self._at]
            self.failovers += 1
        if self._failed < n:  # an address of this round not tried yet: now
            self._retry = None
            self.log("%s; next broker %s:%d now" % (why, self.host, self.port))
            return
        self._failed = 0
        d = self.backoff.next()
        self._retry = ticks_add(self.clock.ticks(), d)
        self.log("%s; next attempt in %d ms (%s:%d)" % (why, d, self.host, self.port))

    async def _connect(self):
        """Open, CONNECT, CONNACK within timeout_ms; "" when up, else why not."""
        self.state = "connecting"
        self._end = None
        clk = self.clock
        t0 = clk.ticks()
        task = asyncio.create_task(self._open())
        while not task.done():
            if self._reconf or not self.online or self._stop:
                task.cancel()
                self._close(False)
                return "abandoned"
            if ticks_diff(clk.ticks(), t0) >= self.timeout_ms:
                task.cancel()
                self._close(False)
                self.timeouts += 1
                return "no CONNACK within %d ms" % self.timeout_ms
            await clk.sleep_ms(_WATCH_MS // 5)
        if self._end is not None:
            self._close(False)
            return self._end
        return ""

    async def _open(self):
        try:
            self._r, self._w = await self.open_stream(self.host, self.port, self.ssl)
            self._w.write(self._connect_packet())
            await self._w.drain()
            first = await self._r.readexactly(1)
            n = await self._length()
            body = await self._r.readexactly(n) if n else b""
            if first[0] != 0x20 or n != 2:
                self.malformed += 1
                self._end = "not a CONNACK: %02x" % first[0]
            elif body[1]:
                rc = body[1]
                self.refused += 1
                self._end = "refused: %s (%d)" % (_REFUSED[rc] if rc < 6 else "?", rc)
        except Exception as e:
            self._end = "%s: %s" % (type(e).__name__, e)

    def _connect_packet(self):
        flags = 0x02  # clean session: the fleet's acks, not the broker's, free the journal
        p = _str(self.client_id)
        if self.will:
            t, m, retain, qos = self.will
            flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
            p += _str(t) + _str(m)
        if self.user:
            flags |= 0x80
            p += _str(self.user)
            if self.password:
                flags |= 0x40
                p += _str(self.password)
        v = b"\x00\x04MQTT\x04" + bytes((flags, self.keepalive >> 8, self.keepalive & 0xFF))
        return self._header(0x10, len(v) + len(p)) + v + p

    def _header(self, kind, n):
        h = self._hdr
        h[0] = kind
        return bytes(h[:_put_len(h, 1, n)])

    async def _serve(self):
        """The connection is up: serve it until it ends; "" for a clean end, else why."""
        clk = self.clock
        self.state = "up"
        self.connects += 1
        self.session += 1
        self._up_at = clk.ticks()
        self.backoff.reset()
        self.last_error = ""
        self._last_rx = self._last_tx = clk.ticks()
        w = self._w
        old, self._flight = self._flight, {}
        if self.birth:
            self._out.insert(0, self.birth)
        try:  # a connection that dies right after its CONNACK: a failure, not a crash of run()
            for i in range(len(self.subs)):
                t, qos = self.subs[i]
                pid = self._next_pid()
                p = _str(t) + bytes((qos,))
                w.write(self._header(0x82, len(p) + 2) + bytes((pid >> 8, pid & 0xFF)) + p)
            for pid in sorted(old):  # what the last connection left without a PUBACK: DUP
                t, m, retain = old[pid]
                self._flight[pid] = (t, m, retain)
                self._write_publish(t, m, retain, 1, pid, True)
                self.retransmitted += 1
        except Exception as e:
            for pid in old:
                self._flight[pid] = old[pid]
            return "send: %s: %s" % (type(e).__name__, e)
        rx = asyncio.create_task(self._reader())
        tx = asyncio.create_task(self._writer())
        ka = self.keepalive
        why = None
        try:
            while why is None:
                await clk.sleep_ms(_WATCH_MS)
                now = clk.ticks()
                if self._end is not None:
                    why = self._end
                elif self._stop or self._reconf:
                    why = ""
                elif not self.online:
                    why = "wifi down"
                elif ka and ticks_diff(now, self._last_rx) > ka * 1500:
                    why = "broker silent for %d s" % (ticks_diff(now, self._last_rx) // 1000)
                elif ka and ticks_diff(now, self._last_tx) >= ka * 500:
                    self._write(b"\xc0\x00")  # PINGREQ; the PINGRESP counts as traffic
                    self.pings += 1
        finally:  # also when run() itself is cancelled
            rx.cancel()
            tx.cancel()
        return why

    def _close(self, clean):
        w, self._r, self._w = self._w, None, None
        self.state = "down"
        dropped = len(self._out)  # the owner queues again what matters (ReaderCore resends)
        if dropped:
            self.out_dropped += dropped
            self._out = []
        if w is None:
            return
        try:
            if clean:  # a will is not sent on a clean disconnect: say it ourselves
                if self.will:
                    self._write_publish(self.will[0], self.will[1], self.will[2], 0, 0, False, w)
                w.write(b"\xe0\x00")
            w.close()
        except Exception:
            pass
        asyncio.create_task(self._closed(w))

    async def _closed(self, w):
        try:  # MicroPython closes the socket here; CPython waits for the flush
            await w.wait_closed()
        except Exception:
            pass

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    def _write(self, b, w=None):
        (w or self._w).write(b)
        self._last_tx = self.clock.ticks()

    def _write_publish(self, topic, payload, retain, qos, pid, dup, w=None):
        t = _str(topic)
        n = len(t) + len(payload) + (2 if qos else 0)
        h = self._header(0x30 | (0x08 if dup else 0) | qos << 1 | (1 if retain else 0), n)
        if qos:
            t += bytes((pid >> 8, pid & 0xFF))
        self._write(h + t, w)
        self._write(payload, w)

    async def _writer(self):
        try:
            while True:
                if not self._out or (self._out[0][3] and len(self._flight) >= _INFLIGHT):
                    self._kick.clear()
                    await self._kick.wait()
                    continue
                t, m, retain, qos = self._out.pop(0)
                pid = 0
                if qos:
                    pid = self._next_pid()
                    self._flight[pid] = (t, m, retain)
                self._write_publish(t, m, retain, qos, pid, False)
                self.published += 1
                await self._w.drain()
        except Exception as e:
            if self._end is None:
                self._end = "send: %s: %s" % (type(e).__name__, e)

    # -- what the broker sends --------------------------------------------------------------
    async def _length(self):
        n = sh = 0
        while True:
            b = (await self._r.readexactly(1))[0]
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                return n
            sh += 7
            if sh > 21:
                self.malformed += 1
                raise ValueError("malformed remaining length")

    async def _reader(self):
        r = self._r
        try:
            while True:
                kind = (await r.readexactly(1))[0]
                n = await self._length()
                self._last_rx = self.clock.ticks()
                if n > self.max_in:
                    await self._skip(kind, n)
                    continue
                self._handle(kind, await r.readexactly(n) if n else b"")
        except Exception as e:
            if self._end is None:
                self._end = "receive: %s: %s" % (type(e).__name__, str(e) or "end of stream")

    async def _skip(self, kind, n):
        """A packet over max_in: read it away, PUBACK it if it asks; it never reaches get()."""
        self.oversize += 1
        r = self._r
        if kind & 0xF0 == 0x30 and kind & 0x06 == 0x02:
            tl = await r.readexactly(2)
            tl = tl[0] << 8 | tl[1]
            topic = await r.readexactly(tl)
            pid = await r.readexactly(2)
            self._write(b"\x40\x02" + pid)
            n -= 4 + tl
            self.log("dropped a %d-byte message on %s: over %d" % (n, topic, self.max_in))
        else:
            self.log("dropped a %d-byte packet %02x: over %d" % (n, kind, self.max_in))
        while n > 0:
            b = await r.read(n if n < _CHUNK else _CHUNK)
            if not b:
                raise EOFError
            n -= len(b)

    def _handle(self, kind, body):
        t = kind & 0xF0
        if t == 0x30:
            self._on_publish(kind, body)
        elif t == 0x40 and len(body) == 2:
            pid = body[0] << 8 | body[1]
            if self._flight.pop(pid, None) is None:
                self.unknown_acks += 1
                self.log("PUBACK for unknown packet id %d" % pid)
            else:
                self._kick.set()
        elif t == 0x90 and len(body) >= 3:
            if b"\x80" in body[2:]:
                self.sub_refused += 1
                self.last_error = "subscription refused"
                self.log(self.last_error)
        elif t == 0xD0 and not body:
            pass  # PINGRESP: its arrival is what counts
        else:
            self.malformed += 1
            self.log("unexpected packet %02x, %d bytes" % (kind, len(body)))

    def _on_publish(self, kind, body):
        qos = (kind >> 1) & 3
        tl = body[0] << 8 | body[1] if len(body) >= 2 else 0xFFFF
        i = 2 + tl + (2 if qos else 0)
        if qos > 1 or i > len(body):
            self.malformed += 1
            self.log("malformed PUBLISH, %d bytes" % len(body))
            return
        if qos:
            self._write(b"\x40\x02" + body[i - 2:i])
        try:
            topic = body[2:2 + tl].decode()
        except Exception:
            self.malformed += 1
            return
        self.received += 1
        if len(self._in) >= self.in_max:
            self.in_dropped += 1
            return
        self._in.append((topic, body[i:]))
