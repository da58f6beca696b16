"""Fake buses for the PN532 transports: a UART with scripted replies, and SPI/I2C fakes that
put the wire-level simulator behind the bus."""
from __future__ import annotations

from collections import deque

from tools.sim.pn532 import PN532Sim


class ScriptedUART:
    """machine.UART shape. Each write that holds a frame start pops the next scripted reply."""

    def __init__(self, replies=()):
        self.replies = deque(replies)
        self.written = bytearray()
        self.rx = bytearray()

    def write(self, data):
        self.written += data
        if b"\x00\xff" in bytes(data) and self.replies:
            self.rx += self.replies.popleft()
        return len(data)

    def any(self):
        return len(self.rx)

    def read(self, n):
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out or None


def split_frames(stream: bytes) -> list[bytes]:
    """Cut the simulator's output stream into frames (ACK, NACK, error, normal)."""
    out, i = [], 0
    while i < len(stream):
        j = stream.index(b"\x00\xff", i)
        ln, lcs = stream[j + 2], stream[j + 3]
        end = j + 4 if (ln, lcs) in ((0, 0xFF), (0xFF, 0)) else j + 5 + ln  # postamble
        out.append(bytes(stream[i:end + 1]))
        i = end + 1
    return out


class SimBehindBus:
    """The simulator with the frames it sent waiting to be read, one at a time."""

    def __init__(self, sim: PN532Sim | None = None):
        self.sim = sim or PN532Sim()
        self.frames: deque[bytes] = deque()

    def host_sends(self, data: bytes) -> None:
        self.frames.extend(split_frames(self.sim.feed(bytes(data))))


class FakeCS:
    def __init__(self, bus):
        self.bus = bus
        self.level = 1

    def value(self, v=None):
        if v is not None:
            self.bus.log.append(("cs", v))
            if v == 0 and self.level == 1:
                self.bus.mode = None  # a new transaction starts with its prefix byte
            self.level = v
        return self.level


class SimSPI(SimBehindBus):
    """An SPI bus with the simulator as the PN532. `lsb_first=False` is an MSB-first bus
    (machine.SPI's default): the chip then sees the transport's bytes bit-reversed."""

    def __init__(self, sim=None, lsb_first=False):
        super().__init__(sim)
        self.lsb = lsb_first
        self.log: list = []
        self.cs = FakeCS(self)
        self.mode = None
        self.pending = bytearray()

    def _wire(self, data):
        from firmware.drivers.pn532_spi import reverse_bits
        return bytes(data) if self.lsb else reverse_bits(data)

    def write(self, data):
        self.log.append(("write", bytes(data)))
        assert self.cs.level == 0, "SPI write with CS high"
        plain = self._wire(data)
        if self.mode is None:
            self.mode, plain = plain[0], plain[1:]
            if self.mode == 0x03:
                self.pending = bytearray(self.frames.popleft() if self.frames else b"")
        if self.mode == 0x01:
            self.host_sends(plain)

    def read(self, n):
        assert self.cs.level == 0, "SPI read with CS high"
        if self.mode == 0x02:
            out = bytes((1 if self.frames else 0,)) + bytes(n - 1)
        else:
            out = bytes(self.pending[:n]) + bytes(max(0, n - len(self.pending)))
            del self.pending[:n]
        return self._wire(out)


class SimI2C(SimBehindBus):
    """Every read: a ready byte, then the waiting frame from its start; a read that covers
    the whole frame releases it."""

    def __init__(self, sim=None):
        super().__init__(sim)
        self.writes: list[tuple[int, bytes]] = []
        self.reads: list[tuple[int, int]] = []

    def writeto(self, addr, data):
        self.writes.append((addr, bytes(data)))
        self.host_sends(data)

    def readfrom(self, addr, n):
        self.reads.append((addr, n))
        if not self.frames:
            return bytes(n)
        frame = self.frames[0]
        if n == 1:
            return b"\x01"
        if n >= 1 + len(frame):
            self.frames.popleft()
        return (b"\x01" + frame + bytes(n))[:n]
