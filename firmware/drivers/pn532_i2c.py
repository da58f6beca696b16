"""PN532 over I2C (address 0x24, up to 400 kHz): moves bytes, nothing else.

Every read starts with a ready byte (bit 0 set when the chip has a frame), then the frame from
its first byte: like ESPHome, a frame read in parts is read again from the start, one byte
longer each time the core asks for more. I2C is the least reliable of the three links; see
docs/drivers.md. `i2c` has writeto(addr, buf) and readfrom(addr, n).
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

ADDRESS = const(0x24)


class PN532I2C:
    def __init__(self, i2c, address=ADDRESS):
        self._i2c = i2c
        self._addr = address
        self._pos = 0  # bytes of the current frame already handed to the core

    def wakeup(self):
        # any address match wakes the chip; it may not ACK while waking up
        try:
            self._i2c.writeto(self._addr, b"\x00")
        except OSError:
            pass

    def write(self, frame):
        self._pos = 0
        self._i2c.writeto(self._addr, frame)

    def ready(self):
        self._pos = 0
        try:
            return bool(self._i2c.readfrom(self._addr, 1)[0] & 0x01)
        except OSError:
            return False  # a busy chip may NAK its address: not ready yet

    def read(self, n, timeout_ms):
        end = self._pos + n
        raw = self._i2c.readfrom(self._addr, 1 + end)
        if not raw[0] & 0x01:
            return b""
        out = bytes(raw[1 + self._pos:1 + end])
        self._pos = end
        return out
