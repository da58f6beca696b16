"""PN532 over SPI (mode 0, LSB first, up to 5 MHz): moves bytes, nothing else.

Every transaction starts with a prefix byte: 0x02 status read (answer bit 0 = ready),
0x01 data write, 0x03 data read. The PN532 sends and expects LSB first; buses that only do
MSB first (many machine.SPI ports) get `lsb_first=False` and the bits are reversed here.
`spi` has write(buf) and read(n); `cs` is a pin with value(v), active low.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from firmware.drivers.pn532 import sleep_ms

_STATUS_READ = const(0x02)
_DATA_WRITE = const(0x01)
_DATA_READ = const(0x03)


def _make_table():
    t = bytearray(256)
    for i in range(256):
        r = 0
        for bit in range(8):
            if i & (1 << bit):
                r |= 0x80 >> bit
        t[i] = r
    return bytes(t)


_REVERSE = None


def reverse_bits(data):
    """Each byte of `data` with its bit order reversed (0x01 -> 0x80)."""
    global _REVERSE
    if _REVERSE is None:
        _REVERSE = _make_table()  # built on first use, not at import
    t = _REVERSE
    return bytes(t[b] for b in data)


class PN532SPI:
    def __init__(self, spi, cs, lsb_first=False):
        self._spi = spi
        self._cs = cs
        self._lsb = lsb_first  # True: the bus itself sends LSB first
        self._reading = False
        cs.value(1)

    def _out(self, data):
        return bytes(data) if self._lsb else reverse_bits(data)

    def _in(self, data):
        return bytes(data) if self._lsb else reverse_bits(data)

    def _end(self):
        if self._reading:
            self._cs.value(1)
            self._reading = False

    def wakeup(self):
        # pulling CS low wakes the chip from power-down; it needs ~2 ms before a command
        self._end()
        self._cs.value(0)
        sleep_ms(2)
        self._cs.value(1)

    def write(self, frame):
        self._end()
        self._cs.value(0)
        self._spi.write(self._out(bytes((_DATA_WRITE,)) + bytes(frame)))
        self._cs.value(1)

    def ready(self):
        self._end()
        self._cs.value(0)
        self._spi.write(self._out(bytes((_STATUS_READ,))))
        status = self._in(self._spi.read(1))[0]
        self._cs.value(1)
        return bool(status & 0x01)

    def read(self, n, timeout_ms):
        # one frame is read in one CS-low transaction, continued across calls
        if not self._reading:
            self._cs.value(0)
            self._spi.write(self._out(bytes((_DATA_READ,))))
            self._reading = True
        return self._in(self._spi.read(n))
