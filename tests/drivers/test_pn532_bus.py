"""SPI and I2C transports: bit order, prefix bytes, the ready byte; the core over both."""
import pytest

from firmware.drivers.pn532 import PN532
from firmware.drivers.pn532_i2c import ADDRESS, PN532I2C
from firmware.drivers.pn532_spi import PN532SPI, reverse_bits
from tests.drivers.pn532_fakes import SimI2C, SimSPI, split_frames

H = bytes.fromhex
UID = H("04a1b2c3d4e5f6")


@pytest.mark.parametrize("byte,rev", [(0x01, 0x80), (0x02, 0x40), (0x03, 0xC0), (0xD4, 0x2B),
                                      (0x00, 0x00), (0xFF, 0xFF), (0x55, 0xAA)])
def test_reverse_bits(byte, rev):
    assert reverse_bits(bytes((byte,))) == bytes((rev,))


def test_reverse_bits_is_an_involution():
    every = bytes(range(256))
    assert reverse_bits(reverse_bits(every)) == every
    assert len(set(reverse_bits(every))) == 256


def test_spi_data_write_prefix_and_software_lsb_first():
    bus = SimSPI()
    t = PN532SPI(bus, bus.cs, lsb_first=False)
    t.write(H("0000ff02fed4022a00"))
    assert ("write", reverse_bits(H("01") + H("0000ff02fed4022a00"))) in bus.log
    assert bus.log[-3:] == [("cs", 0), ("write", H("80") + reverse_bits(
        H("0000ff02fed4022a00"))), ("cs", 1)]


def test_spi_status_read_prefix():
    bus = SimSPI(lsb_first=True)
    t = PN532SPI(bus, bus.cs, lsb_first=True)
    assert t.ready() is False
    assert ("write", H("02")) in bus.log
    t.write(H("0000ff02fed4022a00"))
    assert t.ready() is True


def test_spi_data_read_prefix_one_transaction_per_frame():
    bus = SimSPI(lsb_first=True)
    t = PN532SPI(bus, bus.cs, lsb_first=True)
    t.write(H("0000ff02fed4022a00"))
    assert t.ready()
    assert t.read(3, 10) == H("0000ff") and t.read(3, 10) == H("00ff00")
    assert bus.log.count(("write", H("03"))) == 1


@pytest.mark.parametrize("lsb_first", [False, True])
def test_core_over_spi(lsb_first):
    bus = SimSPI(lsb_first=lsb_first)
    bus.sim.place_tag(UID)
    r = PN532(PN532SPI(bus, bus.cs, lsb_first=lsb_first))
    r.begin()
    assert r.get_firmware_version() == (0x32, 1, 6, 7)
    assert r.list_target() == UID
    r.ntag_write(5, b"wxyz")
    assert r.ntag_read(5)[:4] == b"wxyz"


def test_i2c_ready_byte_then_frame():
    bus = SimI2C()
    t = PN532I2C(bus)
    assert t.ready() is False
    t.write(H("0000ff02fed4022a00"))
    assert bus.writes[-1] == (ADDRESS, H("0000ff02fed4022a00"))
    assert t.ready() is True and bus.reads[-1] == (0x24, 1)
    assert t.read(3, 10) == H("0000ff")
    assert t.read(3, 10) == H("00ff00")  # read again from the start, 1 + 6 bytes
    assert bus.reads[-1] == (0x24, 7)


def test_i2c_not_ready_reads_nothing():
    t = PN532I2C(SimI2C())
    assert t.read(4, 10) == b""


def test_core_over_i2c():
    bus = SimI2C()
    bus.sim.place_tag(UID)
    r = PN532(PN532I2C(bus))
    r.begin()
    assert r.get_firmware_version() == (0x32, 1, 6, 7)
    assert r.list_target() == UID
    assert r.ntag_read(0)[:3] == UID[:3]


def test_split_frames_helper():
    s = H("0000ff00ff00") + H("0000ff06fad50332010607e800")
    assert split_frames(s) == [H("0000ff00ff00"), H("0000ff06fad50332010607e800")]
