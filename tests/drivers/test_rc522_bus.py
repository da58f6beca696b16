"""RC522 transports: the exact bytes on SPI (address byte format, datasheet 8.1.2) and the
I2C calls (8.1.4); the board's make_reader builds the RC522 reader for the ATOM RFID 2."""
from __future__ import annotations

import pytest

from firmware import board
from firmware.drivers.rc522_i2c import RC522I2C
from firmware.drivers.rc522_spi import RC522SPI
from tools.sim.rc522 import RC522Sim

H = bytes.fromhex


class RecordingSPI:
    """machine.SPI shape: records each CS-low transaction; MISO answers from `miso`."""

    def __init__(self, miso=b""):
        self.miso = bytearray(miso)
        self.tx: list[bytes] = []
        self.cur: bytearray | None = None

    def write(self, buf):
        self.cur += bytes(buf)

    def write_readinto(self, out, inp):
        self.cur += bytes(out)
        for i in range(len(inp)):
            inp[i] = self.miso.pop(0) if self.miso else 0


class CS:
    def __init__(self, bus):
        self.bus, self.levels = bus, []

    def value(self, v=None):
        if v is not None:
            self.levels.append(v)
            if v == 0:
                self.bus.cur = bytearray()
            elif self.bus.cur is not None:
                self.bus.tx.append(bytes(self.bus.cur))
                self.bus.cur = None
        return self.levels[-1] if self.levels else 1


def test_spi_address_bytes_for_reads_and_writes():
    bus = RecordingSPI(miso=H("00 92" "00 11 22 33"))
    cs = CS(bus)
    t = RC522SPI(bus, cs)
    assert cs.levels == [1]  # deselected from the start
    assert t.read_reg(0x37) == 0x92
    t.write_reg(0x01, 0x0F)
    assert t.read_regs(0x09, 3) == H("112233")
    t.write_regs(0x09, H("9370"))
    assert bus.tx == [
        H("ee 00"),         # VersionReg 0x37: 0x80 | (0x37 << 1) & 0x7E = EE, then 00
        H("02 0f"),         # CommandReg 0x01 -> 02, SoftReset
        H("92 92 92 00"),   # FIFODataReg 0x09 read three times, then 00
        H("12 93 70"),      # FIFODataReg write: address once, then the data
    ]
    assert all(b & 0x01 == 0 for tx in bus.tx for b in tx[:1])  # bit 0 of an address is 0


def test_spi_cs_is_released_when_the_bus_raises():
    class Broken(RecordingSPI):
        def write_readinto(self, out, inp):
            raise OSError(5)
    bus = Broken()
    cs = CS(bus)
    with pytest.raises(OSError):
        RC522SPI(bus, cs).read_reg(0x04)
    assert cs.levels[-1] == 1


def test_i2c_calls_are_register_addressed_without_shifting():
    calls = []

    class I2C:
        def readfrom_mem_into(self, addr, reg, buf):
            calls.append(("rinto", addr, reg, len(buf)))
            buf[0] = 0x15

        def readfrom_mem(self, addr, reg, n):
            calls.append(("r", addr, reg, n))
            return bytes(range(n))

        def writeto_mem(self, addr, reg, buf):
            calls.append(("w", addr, reg, bytes(buf)))

    t = RC522I2C(I2C())
    assert t.read_reg(0x37) == 0x15
    assert t.read_regs(0x09, 4) == H("00010203")
    t.write_reg(0x01, 0x0C)
    t.write_regs(0x09, H("3004"))
    assert calls == [("rinto", 0x28, 0x37, 1), ("r", 0x28, 0x09, 4),
                     ("w", 0x28, 0x01, H("0c")), ("w", 0x28, 0x09, H("3004"))]


@pytest.mark.virtual_hw
def test_the_sim_decodes_spi_exactly_as_the_transport_encodes():
    sim = RC522Sim("MFRC522")
    spi, cs = sim.spi()
    t = RC522SPI(spi, cs)
    t.write_regs(0x09, H("010203"))
    assert t.read_reg(0x0A) == 3
    assert t.read_regs(0x09, 3) == H("010203")
    assert t.read_reg(0x37) == 0x92 and spi.bad_addresses == 0


@pytest.mark.virtual_hw
def test_make_reader_builds_the_rc522_reader_for_the_atom_rfid2(monkeypatch):
    from tests.runtime.test_main_boards import fake_modules

    main = fake_modules(monkeypatch)
    pins = board.get("m5stack-atom-rfid2")
    assert (pins.READER, pins.READER_BUS, pins.READER_ADDR) == ("WS1850S", "i2c", 0x28)
    sim = RC522Sim("WS1850S")
    sim.place_tag(H("04a1b2c3d4e5f6"))
    reader = main.make_reader(pins, sim.i2c(0x28))
    assert type(reader).__name__ == "RC522Reader"
    assert reader.read_uid() == H("04a1b2c3d4e5f6")
    assert reader.version() == "WS1850S"
