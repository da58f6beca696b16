"""The RC522 simulator against the datasheet and ISO 14443-3, register by register."""
from __future__ import annotations

import pytest

from tools.sim.rc522 import RC522Sim, Tag, crc_a

pytestmark = pytest.mark.virtual_hw
H = bytes.fromhex


def transceive(sim: RC522Sim, frame: bytes, bits: int = 0):
    sim.write(0x01, 0x00)
    sim.write(0x04, 0x7F)
    sim.write(0x0A, 0x80)
    for b in frame:
        sim.write(0x09, b)
    sim.write(0x01, 0x0C)
    sim.write(0x0D, 0x80 | bits)
    irq = sim.read(0x04)
    data = bytes(sim.read(0x09) for _ in range(sim.read(0x0A)))
    return irq, data, sim.read(0x0C) & 0x07


def ready(sim: RC522Sim) -> RC522Sim:
    sim.write(0x2A, 0x80)  # TAuto
    sim.write(0x11, 0x3D)
    sim.write(0x14, 0x83)  # antenna on
    return sim


def test_crc_a_vectors():
    assert crc_a(H("5000")) == H("57cd")
    assert crc_a(H("08")) == H("b6dd")
    assert crc_a(b"") == H("6363")


def test_reset_values_and_the_irq_set_clear_rule():
    sim = RC522Sim("WS1850S")
    assert sim.read(0x37) == 0x15 and sim.read(0x01) == 0x20 and sim.read(0x14) == 0x80
    assert sim.read(0x04) == 0x14
    sim.write(0x04, 0x80 | 0x21)  # Set1 = 1: set RxIRq and TimerIRq
    assert sim.read(0x04) == 0x35
    sim.write(0x04, 0x14)  # Set1 = 0: clear the bits written as 1
    assert sim.read(0x04) == 0x21
    sim.write(0x06, 0xFF)  # ErrorReg is read-only
    assert sim.read(0x06) == 0x00


def test_fifo_overflow_and_flush():
    sim = RC522Sim()
    for i in range(70):
        sim.write(0x09, i)
    assert sim.read(0x0A) == 64 and sim.read(0x06) & 0x10 and sim.read(0x04) & 0x02
    sim.write(0x0A, 0x80)
    assert sim.read(0x0A) == 0 and not sim.read(0x06) & 0x10


def test_calc_crc_uses_the_modereg_preset():
    sim = RC522Sim()
    for preset, mode in ((0xFFFF, 0x3F), (0x6363, 0x3D)):
        sim.write(0x11, mode)
        sim.write(0x09, 0x08)
        sim.write(0x01, 0x03)
        assert sim.read(0x05) & 0x04
        assert bytes((sim.read(0x22), sim.read(0x21))) == crc_a(H("08"), preset)
        sim.write(0x05, 0x04)


def test_no_tag_sets_timerirq_only_with_tauto_and_the_antenna_on():
    sim = RC522Sim()
    sim.write(0x14, 0x83)
    assert transceive(sim, H("26"), 7)[0] & 0x01 == 0  # TAuto off: no timer at all
    sim.write(0x2A, 0x80)
    assert transceive(sim, H("26"), 7)[0] & 0x21 == 0x01


def test_iso14443_state_machine_reqa_wupa_halt():
    sim = ready(RC522Sim())
    tag = sim.place_tag(H("11223344"))
    assert transceive(sim, H("26"), 7)[1:] == (H("0400"), 0)
    assert transceive(sim, H("9320"))[1] == H("1122334444")
    sel = H("93701122334444")
    assert transceive(sim, sel + crc_a(sel))[1] == H("08") + crc_a(H("08"))
    assert tag.state == "ACTIVE"
    assert transceive(sim, H("26"), 7)[1] == b""  # REQA to an ACTIVE tag: quiet, back to IDLE
    assert tag.state == "IDLE"
    transceive(sim, H("52"), 7)
    transceive(sim, H("9320"))
    transceive(sim, sel + crc_a(sel))
    assert transceive(sim, H("5000") + crc_a(H("5000")))[1] == b"" and tag.state == "HALT"
    assert transceive(sim, H("26"), 7)[1] == b""  # REQA does not wake a halted tag
    assert transceive(sim, H("52"), 7)[1] == H("0400")  # WUPA does
    sim.write(0x14, 0x80)  # antenna off: the tag loses power
    assert tag.state == "IDLE"


def test_ntag_nak_codes_and_4_bit_answers():
    sim = ready(RC522Sim())
    tag = sim.place_tag(Tag(H("04a1b2c3d4e5f6")))
    transceive(sim, H("52"), 7)
    for cl in (H("9320"), H("9520")):
        part = transceive(sim, cl)[1]
        sel = cl[:1] + b"\x70" + part
        transceive(sim, sel + crc_a(sel))
    w = H("a2 05 01020304")
    assert transceive(sim, w + crc_a(w))[1:] == (H("0a"), 4)  # ACK
    assert tag.pages[20:24] == H("01020304")
    bad = H("a2 05 01020304") + H("0000")
    assert transceive(sim, bad)[1:] == (H("01"), 4)  # NAK 1: CRC error
    assert tag.state == "IDLE"


def test_two_tags_collide_with_collpos_and_values_after_coll_zero():
    sim = ready(RC522Sim())
    sim.place_tag(H("11223344"))
    sim.place_tag(H("11223355"))
    transceive(sim, H("26"), 7)  # same ATQA: no collision
    assert not sim.read(0x06) & 0x08
    _, data, _ = transceive(sim, H("9320"))
    assert sim.read(0x06) & 0x08 and sim.read(0x0E) & 0x1F == 25
    assert data == H("1122334444")  # CollReg resets to A0: ValuesAfterColl = 1, bits kept
    sim.write(0x0E, 0x00)
    sim.write(0x14, 0x80)  # field off and on: both tags back to IDLE
    sim.write(0x14, 0x83)
    transceive(sim, H("26"), 7)
    _, data, _ = transceive(sim, H("9320"))
    assert data == H("1122330000")  # from bit 25 on, everything reads 0
