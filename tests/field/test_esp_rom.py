"""The ESP32 ROM simulator at the byte level: SLIP frames, the ROM's answers and status bytes."""
from __future__ import annotations

import hashlib
import struct

import pytest

from tools.sim.esp_rom import BOOT_LOG, EspRomSim, checksum, slip

pytestmark = pytest.mark.virtual_hw


def cmd(op: int, data: bytes = b"", chk: int = 0) -> bytes:
    return slip(struct.pack("<BBHI", 0, op, len(data), chk) + data)


def replies(raw: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    for p in raw.split(b"\xc0"):
        if p:
            p = p.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
            _, op, n, val = struct.unpack("<BBHI", p[:8])
            out.append((op, val, p[8:8 + n]))
    return out


def test_sync_answers_eight_times_as_the_rom():
    r = replies(EspRomSim().feed(cmd(0x08, b"\x07\x07\x12\x20" + b"\x55" * 32)))
    assert len(r) == 8 and all(op == 0x08 and val != 0 and d == b"\0\0\0\0" for op, val, d in r)


def test_read_reg_gives_the_chip_magic_and_slip_escapes():
    sim = EspRomSim()
    [(op, val, status)] = replies(sim.feed(cmd(0x0A, struct.pack("<I", 0x40001000))))
    assert (op, val, status) == (0x0A, 0x00F01D83, b"\0\0\0\0")
    assert slip(b"\xc0\xdb") == b"\xc0\xdb\xdc\xdb\xdd\xc0"
    assert replies(EspRomSim(chip="esp8266").feed(cmd(0x0A, struct.pack("<I", 0x40001000))))[0][1] \
        == 0xFFF0C101


def test_flash_data_checks_the_checksum_and_md5_reads_back():
    sim = EspRomSim()
    block = bytes(range(256)) * 4
    sim.feed(cmd(0x02, struct.pack("<IIII", 0x1000, 1, 0x400, 0x10000)))
    bad = replies(sim.feed(cmd(0x03, struct.pack("<IIII", 0x400, 0, 0, 0) + block, 0x00)))
    assert bad[0][2][:2] == b"\x01\x07"  # status 1, invalid CRC
    good = replies(sim.feed(cmd(0x03, struct.pack("<IIII", 0x400, 0, 0, 0) + block,
                                checksum(block))))
    assert good[0][2][:2] == b"\0\0" and sim.flash[0x10000:0x10400] == block
    [(_, _, md5)] = replies(sim.feed(cmd(0x13, struct.pack("<IIII", 0x10000, 0x400, 0, 0))))
    assert md5[:32] == hashlib.md5(block).hexdigest().encode()


def test_unknown_commands_get_the_invalid_message_status():
    assert replies(EspRomSim().feed(cmd(0xD0)))[0][2][:2] == b"\x01\x05"  # ERASE_FLASH: stub only


def test_not_in_download_mode_prints_its_boot_log():
    sim = EspRomSim(boot_mode="app")
    assert sim.feed(cmd(0x08, b"\x07\x07\x12\x20" + b"\x55" * 32)) == BOOT_LOG
    assert b"boot:0x13" in BOOT_LOG
