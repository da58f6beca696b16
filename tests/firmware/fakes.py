"""The firmware tests' fakes, one of each, MicroPython-safe (they run on the real MicroPython too:
tests/firmware/conftest.py). No typing, no dataclasses, no collections.deque.

- Clock: the firmware's clock object (time(), quality()), moved by hand.
- FakeNet: the network at the firmware's one seam, firmware/runtime/net.py's
  `open_stream(host, port, ssl=None)`; its streams have the asyncio Stream subset the firmware
  uses (read, readexactly, write, drain, close, wait_closed).
- ScriptedUART: a PN532 transport's bus (machine.UART's write/any/read): each write holding a
  frame start queues the next scripted reply.
"""
import asyncio

ECONNREFUSED = 111
ENOTCONN = 107


class Clock:
    def __init__(self, t=1795420000, quality="synced"):
        self.t = t
        self.q = quality

    def time(self):
        return self.t

    def quality(self):
        return self.q

    def advance(self, s):
        self.t += s


class FakeStream:
    """One connection: what the firmware wrote is in `.written`; `feed(b)` and `eof()` are the
    peer's side. Reader and writer are this one object, as in MicroPython."""

    def __init__(self, net, host, port, ssl):
        self.net, self.host, self.port, self.ssl = net, host, port, ssl
        self.written = bytearray()
        self.closed = False
        self._rx = bytearray()
        self._eof = False
        self._error = 0
        self._event = asyncio.Event()

    # -- the peer (the test) --
    def feed(self, data):
        self._rx.extend(data)
        self._event.set()

    def eof(self):
        self._eof = True
        self._event.set()

    def fail(self, errno=ENOTCONN):
        """The connection breaks: the next read or drain raises OSError(errno)."""
        self._error = errno
        self._event.set()

    # -- the firmware's side --
    async def read(self, n=-1):
        while not self._rx and not self._eof and not self._error:
            self._event.clear()
            await self._event.wait()
        if self._rx:
            n = len(self._rx) if n < 0 else min(n, len(self._rx))
            out = bytes(self._rx[:n])
            self._rx = self._rx[n:]
            return out
        if self._error:
            raise OSError(self._error)
        return b""

    async def readexactly(self, n):
        out = b""
        while len(out) < n:
            data = await self.read(n - len(out))
            if not data:
                raise EOFError
            out += data
        return out

    def write(self, data):
        if self.closed:
            raise OSError(ENOTCONN)
        self.written.extend(data)

    async def drain(self):
        if self._error:
            raise OSError(self._error)

    def close(self):
        self.closed = True

    async def wait_closed(self):
        self.closed = True


class FakeNet:
    """`open_stream` as firmware/runtime/net.py offers it. `refuse = errno` makes the next
    connects fail with OSError(errno); `hold = True` makes them wait until `release()` (a
    connect that hangs). `streams` lists every connection opened, newest last."""

    def __init__(self):
        self.streams = []
        self.attempts = []
        self.refuse = 0
        self.hold = False
        self._released = asyncio.Event()

    def release(self):
        self.hold = False
        self._released.set()

    async def open_stream(self, host, port, ssl=None):
        self.attempts.append((host, port))
        while self.hold:
            self._released.clear()
            await self._released.wait()
        if self.refuse:
            raise OSError(self.refuse)
        s = FakeStream(self, host, port, ssl)
        self.streams.append(s)
        return s, s


class ScriptedUART:
    """machine.UART's shape for a PN532 transport: each write that holds a frame start
    (00 FF) queues the next scripted reply for reading."""

    def __init__(self, replies=()):
        self.replies = list(replies)
        self.written = bytearray()
        self.rx = bytearray()

    def write(self, data):
        self.written.extend(data)
        if b"\x00\xff" in bytes(data) and self.replies:
            self.rx.extend(self.replies.pop(0))
        return len(data)

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        n = len(self.rx) if n < 0 else min(n, len(self.rx))
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out
