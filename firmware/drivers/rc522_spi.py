"""MFRC522 over SPI (mode 0, MSB first, up to 10 MHz): moves bytes, nothing else.

The address byte (datasheet 8.1.2.3) is (reg << 1) & 0x7E, with bit 7 set to read. A read of
n bytes sends the address n times then 00; the chip answers each address on the next byte,
so the data is the answer from its second byte (8.1.2.1). A write sends the address, then
every data byte to that register (8.1.2.2). `spi` has write(buf) and write_readinto(out, in);
`cs` is a pin with value(v), active low.
"""


class RC522SPI:
    def __init__(self, spi, cs):
        self._spi = spi
        self._cs = cs
        self._out = bytearray(2)
        self._in = bytearray(2)
        cs.value(1)

    def read_reg(self, reg):
        out, inp = self._out, self._in
        out[0] = 0x80 | ((reg << 1) & 0x7E)
        out[1] = 0
        self._cs.value(0)
        try:
            self._spi.write_readinto(out, inp)
        finally:
            self._cs.value(1)
        return inp[1]

    def read_regs(self, reg, n):
        out = bytearray(n + 1)  # the address n times, then 00
        a = 0x80 | ((reg << 1) & 0x7E)
        for i in range(n):
            out[i] = a
        inp = bytearray(n + 1)
        self._cs.value(0)
        try:
            self._spi.write_readinto(out, inp)
        finally:
            self._cs.value(1)
        return bytes(inp[1:])

    def write_reg(self, reg, value):
        out = self._out
        out[0] = (reg << 1) & 0x7E
        out[1] = value
        self._cs.value(0)
        try:
            self._spi.write(out)
        finally:
            self._cs.value(1)

    def write_regs(self, reg, data):
        self._cs.value(0)
        try:
            self._spi.write(bytes(((reg << 1) & 0x7E,)) + bytes(data))
        finally:
            self._cs.value(1)
