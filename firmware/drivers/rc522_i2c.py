"""MFRC522 / WS1850S over I2C (address 0x28 on the M5Stack RFID 2 unit): moves bytes, nothing else.

The register address byte is the register number itself (datasheet 8.1.4). A read or write
of several bytes in one frame stays on the same register (8.1.4.6, 8.1.4.7): that is how the
FIFO is filled and emptied. `i2c` is machine.I2C or anything with readfrom_mem and
writeto_mem; a bus error (the chip NAKs its address) raises OSError, which the core reports.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

ADDRESS = const(0x28)


class RC522I2C:
    def __init__(self, i2c, addr=ADDRESS):
        self._i2c = i2c
        self._addr = addr
        self._rx = bytearray(1)
        self._tx = bytearray(1)

    def read_reg(self, reg):
        self._i2c.readfrom_mem_into(self._addr, reg, self._rx)
        return self._rx[0]

    def read_regs(self, reg, n):
        return self._i2c.readfrom_mem(self._addr, reg, n)

    def write_reg(self, reg, value):
        self._tx[0] = value
        self._i2c.writeto_mem(self._addr, reg, self._tx)

    def write_regs(self, reg, data):
        self._i2c.writeto_mem(self._addr, reg, data)
