"""The RC522 core against the register-level simulator, through the real I2C and SPI transports:
exact register sequences (datasheet 10.3.1), UIDs, NTAG memory, NDEF, and every error."""
from __future__ import annotations

import time

import pytest

from firmware import ndef
from firmware.drivers import ntag
from firmware.drivers.rc522 import RC522, RC522Error, RC522Timeout, chip_name
from firmware.drivers.rc522_i2c import RC522I2C
from firmware.drivers.rc522_spi import RC522SPI
from firmware.runtime.taps import RC522Reader
from tools.sim.pn532 import ntag_image
from tools.sim.rc522 import RC522Sim

pytestmark = pytest.mark.virtual_hw

H = bytes.fromhex
UID7 = H("04a1b2c3d4e5f6")
UID4 = H("11223344")
# registers, as named in the datasheet
COMMAND, COM_IRQ, DIV_IRQ, ERROR, FIFO, LEVEL, CONTROL, BITFRAMING = (
    0x01, 0x04, 0x05, 0x06, 0x09, 0x0A, 0x0C, 0x0D)
CRC_H, CRC_L = 0x21, 0x22


def make(bus: str = "i2c", chip: str = "WS1850S", uid: bytes | None = UID7, timeout_ms=50):
    sim = RC522Sim(chip)
    if uid is not None:
        sim.place_tag(uid)
    if bus == "i2c":
        t = RC522I2C(sim.i2c(0x28))
    else:
        spi, cs = sim.spi()
        t = RC522SPI(spi, cs)
    reader = RC522(t, timeout_ms=timeout_ms)
    reader.reset()
    sim.log.clear()
    sim.frames.clear()
    return sim, reader


BUSES = pytest.mark.parametrize("bus", ["i2c", "spi"])


# -- exact register sequences ------------------------------------------------------------------

def test_reset_writes_the_usual_settings_and_turns_the_antenna_on():
    sim = RC522Sim("MFRC522")
    RC522(RC522I2C(sim.i2c())).reset()
    assert sim.writes() == [
        (COMMAND, 0x0F),                   # SoftReset
        (0x12, 0x00), (0x13, 0x00),        # TxModeReg, RxModeReg: 106 kbit/s, no CRC
        (0x24, 0x26),                      # ModWidthReg
        (0x2A, 0x80), (0x2B, 0xA9),        # TModeReg TAuto, TPrescalerReg: 40 kHz
        (0x2C, 0x03), (0x2D, 0xE8),        # TReloadReg 1000: 25 ms
        (0x15, 0x40),                      # TxASKReg Force100ASK
        (0x11, 0x3D),                      # ModeReg: CRC preset 6363
        (0x0E, 0x00),                      # CollReg: ValuesAfterColl = 0
        (0x14, 0x83),                      # TxControlReg: Tx1RFEn, Tx2RFEn
    ]


def test_reqa_is_the_datasheet_transceive_sequence():
    sim, r = make()
    assert r.request() == H("4400")  # NTAG21x ATQA 0x0044, LSB first
    assert sim.log == [
        ("w", COMMAND, 0x00),          # Idle: stop whatever runs
        ("w", COM_IRQ, 0x7F),          # Set1 = 0: clear every IRQ bit
        ("w", LEVEL, 0x80),            # FlushBuffer
        ("w", FIFO, 0x26),             # REQA
        ("w", COMMAND, 0x0C),          # Transceive
        ("w", BITFRAMING, 0x87),       # StartSend, TxLastBits = 7
        ("r", COM_IRQ, 0x60),          # TxIRq | RxIRq
        ("r", ERROR, 0x00),
        ("r", LEVEL, 2),
        ("r", FIFO, 0x44), ("r", FIFO, 0x00),
        ("r", CONTROL, 0x10),          # RxLastBits 0: whole bytes
    ]
    assert sim.frames == [(H("26"), 7)]


def test_select_computes_crc_a_on_the_coprocessor_and_checks_the_sak():
    sim, r = make(uid=UID4)
    assert r.request() == H("0400")
    part = r.anticollision(1)
    assert part == H("1122334444")  # UID + BCC (11^22^33^44 = 44)
    sim.log.clear()
    assert r.select(1, part) == 0x08  # MIFARE Classic 1K
    frame = H("93701122334444")
    assert sim.writes() == [
        (COMMAND, 0x00), (DIV_IRQ, 0x04), (LEVEL, 0x80),      # CalcCRC of the frame
        *[(FIFO, b) for b in frame], (COMMAND, 0x03), (COMMAND, 0x00),
        (COMMAND, 0x00), (COM_IRQ, 0x7F), (LEVEL, 0x80),      # Transceive frame + CRC_A
        *[(FIFO, b) for b in frame + H("519c")], (COMMAND, 0x0C), (BITFRAMING, 0x80),
        (COMMAND, 0x00), (DIV_IRQ, 0x04), (LEVEL, 0x80),      # CalcCRC of the SAK
        (FIFO, 0x08), (COMMAND, 0x03), (COMMAND, 0x00),
    ]
    reads = [(reg, v) for op, reg, v in sim.log if op == "r"]
    assert (CRC_L, 0x51) in reads and (CRC_H, 0x9C) in reads
    assert reads[-2:] == [(CRC_L, 0xB6), (CRC_H, 0xDD)]  # CRC_A(08) = B6 DD
    assert sim.frames[-1] == (frame + H("519c"), 0)


def test_calc_crc_known_vectors():
    _, r = make()
    assert r.calc_crc(H("5000")) == H("57cd")  # HLTA
    assert r.calc_crc(H("3004")) == H("26ee")  # NTAG READ page 4
    assert r.calc_crc(H("08")) == H("b6dd")


# -- UIDs --------------------------------------------------------------------------------------

@BUSES
def test_seven_byte_uid_through_two_cascade_levels(bus):
    sim, r = make(bus)
    assert r.list_target() == UID7
    assert sim.frames == [
        (H("52"), 7),                                        # WUPA
        (H("9320"), 0), (H("93708804a1b29f") + H("ae4b"), 0),  # CL1: CT 88, BCC 9f
        (H("9520"), 0), (H("9570c3d4e5f604") + H("9e03"), 0),  # CL2
    ]
    assert sim.tag.state == "ACTIVE"


@BUSES
def test_four_byte_uid_and_the_card_stays_present_poll_after_poll(bus):
    sim, r = make(bus, uid=UID4)
    for _ in range(3):
        assert r.list_target() == UID4
    # the tag selected last time is halted, then woken with WUPA
    assert sim.frames[-4:] == [(H("500057cd"), 0), (H("52"), 7), (H("9320"), 0),
                               (H("93701122334444519c"), 0)]


@pytest.mark.serial  # a bound in CPU time: alone, after the others
def test_an_empty_field_is_none_and_a_new_tag_is_seen():
    sim, r = make(uid=None)
    t0 = time.monotonic()
    assert r.list_target() is None
    assert time.monotonic() - t0 < 0.05
    sim.place_tag(UID4)
    assert r.list_target() == UID4
    sim.remove_tag()
    assert r.list_target() is None


def test_antenna_off_sees_no_tag_and_antenna_on_again_does():
    sim, r = make()
    r.antenna_off()
    assert r.list_target() is None
    r.antenna_on()
    assert r.list_target() == UID7


def test_version_and_chip_names():
    for chip, v, name in (("WS1850S", 0x15, "WS1850S"), ("MFRC522", 0x92, "MFRC522 v2.0"),
                          ("MFRC522v1", 0x91, "MFRC522 v1.0")):
        _, r = make(chip=chip)
        assert r.version() == v and chip_name(v) == name
    assert chip_name(0x12) == "unknown 0x12"


# -- NTAG memory and NDEF ----------------------------------------------------------------------

@BUSES
def test_ntag_read_write_round_trip(bus):
    sim, r = make(bus)
    r.list_target()
    assert r.ntag_read(0) == bytes(ntag_image(UID7)[:16])
    r.ntag_write(4, b"abcd")
    r.ntag_write(5, H("01020304"))
    assert r.ntag_read(4)[:8] == b"abcd" + H("01020304")
    assert sim.tag.pages[16:24] == b"abcd" + H("01020304")
    assert (H("a20461626364") + H("82cd"), 0) in sim.frames
    assert r.ntag_read(44)[4:8] == sim.tag.pages[0:4]  # the READ wraps past page 44


@BUSES
def test_ndef_message_through_ntag_over_this_reader(bus):
    _, r = make(bus)
    r.list_target()
    msg = ndef.encode_message([ndef.text_record("client 42", "fr"),
                               ndef.uri_record("https://telegest.example/v/42")])
    pages = ntag.write_message(r, msg)
    assert pages == -(-len(ndef.message_tlv(msg)) // 4)
    r.list_target()  # a new poll, as the reader loop does
    recs = ndef.decode_message(ntag.read_message(r))
    assert ndef.decode_text(recs[0]) == ("fr", "client 42")
    assert ndef.decode_uri(recs[1]) == "https://telegest.example/v/42"


# -- errors ------------------------------------------------------------------------------------

def reason(fn, *args):
    with pytest.raises(RC522Error) as e:
        fn(*args)
    return e.value


def test_two_tags_collide():
    sim, r = make(uid=UID4)
    sim.place_tag(H("11223355"))
    e = reason(r.list_target)
    assert e.reason == "collision" and "bit 25" in str(e)  # 44 ^ 55 = 11: bit 0 of byte 3
    assert r.stats["collisions"] == 1 and not isinstance(e, RC522Timeout)


def test_a_tag_that_stops_answering_is_a_tag_timeout():
    sim, r = make()
    r.list_target()
    sim.mute_tag()
    e = reason(r.ntag_read, 4)
    assert e.reason == "timeout" and "READ page 4" in str(e)
    assert not isinstance(e, RC522Timeout) and r.stats["timeouts"] == 1


def test_a_bad_crc_in_the_answer():
    sim, r = make()
    r.list_target()
    sim.corrupt_crc()
    e = reason(r.ntag_read, 4)
    assert e.reason == "crc" and r.stats["crc_errors"] == 1


def test_a_nak_to_a_write_on_a_read_only_page_and_to_read_on_a_classic_card():
    _, r = make()
    r.list_target()
    e = reason(r.ntag_write, 0, b"abcd")
    assert e.reason == "nak" and "NAK 0x0" in str(e) and r.stats["naks"] == 1
    _, r = make(uid=UID4)
    r.list_target()
    assert reason(r.ntag_read, 4).reason == "nak"  # not authenticated


def test_an_answer_longer_than_the_fifo_is_a_buffer_overflow():
    sim, r = make()
    r.list_target()
    sim.babble_next()
    assert reason(r.ntag_read, 4).reason == "overflow"
    assert reason(r._transceive, bytes(65), 0).reason == "overflow"  # refused before sending


def test_wrong_arguments_are_refused_before_anything_is_sent():
    sim, r = make()
    r.list_target()
    sim.log.clear()
    assert reason(r.ntag_write, 4, b"abc").reason == "protocol"
    assert sim.log == []


@BUSES
@pytest.mark.serial  # a bound in CPU time: alone, after the others
def test_a_hung_chip_is_rc522timeout_in_bounded_time(bus):
    sim, r = make(bus, timeout_ms=30)
    sim.hang()
    t0 = time.monotonic()
    with pytest.raises(RC522Timeout, match="did not complete within 30 ms"):
        r.list_target()
    assert time.monotonic() - t0 < 0.5
    assert r.stats["chip_timeouts"] == 1


def test_a_chip_gone_from_the_bus_is_rc522timeout():
    sim, r = make("i2c")
    sim.stop_answering()
    with pytest.raises(RC522Timeout, match="bus error") as e:
        r.list_target()
    assert e.value.reason == "chip"
    sim, r = make("spi")
    sim.stop_answering()  # MISO reads 00: the version check catches it
    with pytest.raises(RC522Timeout, match="VersionReg reads 0x00"):
        r.reset()
    sim, r = make("i2c")
    r._t._addr = 0x29  # nothing there
    with pytest.raises(RC522Timeout):
        r.version()


# -- the reader loop's adapter -----------------------------------------------------------------

def test_rc522reader_resets_on_first_use_and_after_an_error():
    sim = RC522Sim("WS1850S")
    reader = RC522Reader(RC522(RC522I2C(sim.i2c()), timeout_ms=30))
    assert reader.read_uid() is None
    sim.place_tag(UID7)
    assert reader.read_uid() == UID7
    sim.stop_answering()
    with pytest.raises(RC522Timeout):
        reader.read_uid()
    sim.resume()
    n = sum(1 for op, reg, v in sim.log if (op, reg, v) == ("w", COMMAND, 0x0F))
    assert reader.read_uid() == UID7  # reset again: SoftReset, antenna on
    assert sum(1 for op, reg, v in sim.log if (op, reg, v) == ("w", COMMAND, 0x0F)) == n + 1
    assert reader.version() == "WS1850S"
