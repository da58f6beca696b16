"""The RC522 core and its transports, on CPython and on MicroPython from one source, against a
tiny register-level fake bus (the core against the RC522 simulator: tests/drivers/, CPython)."""
from firmware.drivers.rc522 import RC522, RC522Error, RC522Timeout, chip_name
from firmware.drivers.rc522_i2c import RC522I2C
from firmware.drivers.rc522_spi import RC522SPI
from tests.firmware.support import raises

H = bytes.fromhex


def crc_a(data):
    crc = 0x6363
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return bytes((crc & 0xFF, crc >> 8))


class Bus:
    """machine.I2C shape. Registers, FIFO, Transceive/CalcCRC, one 4-byte UID card that answers
    WUPA, ANTICOLLISION, SELECT and READ. `error` goes to ErrorReg with the next answer."""

    def __init__(self, uid=None):
        self.regs = bytearray(64)
        self.regs[0x37] = 0x92
        self.fifo = bytearray()
        self.uid = uid
        self.error = 0
        self.hung = False
        self.sent = []

    def readfrom_mem_into(self, addr, reg, buf):
        buf[:] = self.readfrom_mem(addr, reg, len(buf))

    def readfrom_mem(self, addr, reg, n):
        out = bytearray(n)
        for i in range(n):
            if reg == 0x09 and self.fifo:  # (no bytearray.pop on MicroPython)
                out[i], self.fifo = self.fifo[0], self.fifo[1:]
            elif reg == 0x0A:
                out[i] = len(self.fifo)
            else:
                out[i] = self.regs[reg]
        return bytes(out)

    def writeto_mem(self, addr, reg, buf):
        for v in buf:
            if reg == 0x09:
                self.fifo.append(v)
            elif reg == 0x0A:
                if v & 0x80:
                    self.fifo = bytearray()
            elif reg in (0x04, 0x05):
                self.regs[reg] = self.regs[reg] | v & 0x7F if v & 0x80 else self.regs[reg] & ~v
            elif reg == 0x01 and self.hung:
                pass
            elif reg == 0x01 and v == 0x03:
                c = crc_a(bytes(self.fifo))
                self.fifo = bytearray()
                self.regs[0x22], self.regs[0x21] = c[0], c[1]
                self.regs[0x05] |= 0x04
            elif reg == 0x0D and v & 0x80 and self.regs[0x01] == 0x0C and not self.hung:
                self.transceive(bytes(self.fifo), v & 7)
            else:
                self.regs[reg] = v

    def transceive(self, frame, bits):
        self.sent.append(frame)
        self.fifo = bytearray()
        u = self.uid
        ans = None
        if u is None:
            pass
        elif bits == 7:
            ans = H("0400")
        elif frame == H("9320"):
            ans = u + bytes((u[0] ^ u[1] ^ u[2] ^ u[3],))
        elif frame[:2] == H("9370"):
            ans = b"\x08" + crc_a(b"\x08")
        elif frame[0] == 0x30:
            ans = bytes(range(frame[1], frame[1] + 16))
            ans += crc_a(ans)
        elif frame[0] == 0xA2:
            self.regs[0x0C] = 4
            self.fifo.append(0x0A)
        if ans is None and not self.fifo:
            self.regs[0x04] |= 0x01
            return
        self.fifo += ans or b""
        if ans:
            self.regs[0x0C] = 0
        self.regs[0x06] = self.error
        self.error = 0
        self.regs[0x04] |= 0x20


def card():
    uid = H("11223344")
    bus = Bus(uid)
    r = RC522(RC522I2C(bus), timeout_ms=20)
    r.reset()
    return uid, bus, r


def test_reset_select_read_and_write():
    uid, bus, r = card()
    assert chip_name(r.version()) == "MFRC522 v2.0"
    assert bus.regs[0x14] & 0x03 == 0x03 and bus.regs[0x2A] == 0x80 and bus.regs[0x11] == 0x3D
    assert r.request() == H("0400")
    assert r.calc_crc(H("5000")) == H("57cd")
    assert r.list_target() == uid and r.list_target() == uid
    assert bus.sent[-3] == H("52") and bus.sent[-1] == H("93701122334444519c")
    assert r.ntag_read(4) == bytes(range(4, 20))
    r.ntag_write(4, b"abcd")
    assert bus.sent[-1] == H("a20461626364") + crc_a(H("a20461626364"))


def test_errors_each_with_its_reason():
    uid, bus, r = card()
    for err, why in ((0x08, "collision"), (0x10, "overflow"), (0x02, "parity")):
        bus.error = err
        with raises(RC522Error) as e:
            r.ntag_read(4)
        assert e.value.reason == why and str(e.value).startswith(why), str(e.value)
    bus.uid = None
    assert r.list_target() is None
    with raises(RC522Error) as e:
        r.ntag_read(4)
    assert e.value.reason == "timeout" and not isinstance(e.value, RC522Timeout)
    bus.hung = True
    with raises(RC522Timeout) as e:
        r.list_target()
    assert "within 20 ms" in str(e.value) and isinstance(e.value, RC522Error)
    assert e.value.reason == "chip"


class NoChip:
    def readfrom_mem_into(self, addr, reg, buf):
        raise OSError(19)

    writeto_mem = readfrom_mem = readfrom_mem_into


def test_a_bus_error_is_a_timeout_that_says_so():
    with raises(RC522Timeout) as e:
        RC522(RC522I2C(NoChip())).reset()
    assert "bus error" in str(e.value)


class SPI:
    def __init__(self):
        self.tx = bytearray()

    def write(self, b):
        self.tx += b

    def write_readinto(self, out, inp):
        self.tx += out
        for i in range(len(inp)):
            inp[i] = 0x92


class Pin:
    def value(self, v=None):
        return 1


def test_spi_address_bytes():
    spi = SPI()
    t = RC522SPI(spi, Pin())
    assert t.read_reg(0x37) == 0x92
    t.write_reg(0x01, 0x0F)
    assert t.read_regs(0x09, 2) == H("9292")
    assert bytes(spi.tx) == H("ee00" "020f" "929200")
