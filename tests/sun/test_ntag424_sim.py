"""The NTAG 424 DNA simulator's command set against the reader side (tools/field/ntag424.py),
and its refusals: what a wrong key, a wrong MAC, a wrong CRC or a locked file get."""
from __future__ import annotations

import pytest

from fleet.aes128 import crc32_nk
from tools.field.ntag424 import FULL, MAC, PLAIN, Ntag424Error, Ntag424Link, ndef_file, read_url
from tools.sim.ntag424 import Ntag424

pytestmark = [pytest.mark.virtual_hw]
UID = bytes.fromhex("04A1B2C3D4E5F6")
KEY = bytes(range(16))


@pytest.fixture
def link():
    tag = Ntag424(UID)
    link = Ntag424Link(tag.apdu)
    link.tag = tag
    link.select_ndef()
    return link


def test_iso_select_read_and_update(link):
    assert link.iso(b"\x00\xa4\x00\x0c\x02\xe1\x03", "select CC") == b""
    cc = link.read_binary(0, 15)
    assert cc[:3] == b"\x00\x17\x20" and cc[9:11] == b"\xe1\x04"
    link.iso(b"\x00\xa4\x00\x0c\x02\xe1\x04", "select NDEF")
    link.update_binary(0, ndef_file("https://tg.example/x"))
    assert read_url(link) == "https://tg.example/x"
    with pytest.raises(Ntag424Error, match="6A82"):
        link.iso(b"\x00\xa4\x00\x0c\x02\xe1\x09", "select")
    with pytest.raises(Ntag424Error, match="6A82"):
        link.iso(b"\x00\xa4\x04\x0c\x07" + bytes(7) + b"\x00", "select app")


def test_authenticate_with_a_wrong_key(link):
    with pytest.raises(Ntag424Error, match="authentication error"):
        link.authenticate(0, KEY)
    link.authenticate(0, bytes(16))
    assert link.session is not None and link.session.ctr == 0


def test_full_mode_write_and_read_with_the_counter_moving(link):
    link.authenticate(3, bytes(16))  # the proprietary file: read 2, write 3, RW 3, Full
    link.write_data(3, 10, b"telegest" * 5, FULL)
    assert link.read_data(3, 10, 40, FULL) == b"telegest" * 5
    assert link.read_data(3, 0, 16, FULL) == bytes(10) + b"telege"
    assert link.session.ctr == 3 == link.tag.session.ctr
    # without a session the file stays closed
    link.select_ndef()
    with pytest.raises(Ntag424Error, match="permission denied"):
        link.read_data(3, 0, 4, PLAIN)


def test_mac_mode_and_file_settings(link):
    link.authenticate(0, bytes(16))
    settings = link.secure(0xF5, b"\x02", b"", MAC)
    assert settings[:3] == b"\x00\xe0\xee" and settings[4:7] == (256).to_bytes(3, "little")


def test_a_wrong_mac_ends_the_session(link):
    link.authenticate(0, bytes(16))
    link.session.mac = bytes(16)  # the reader's MAC key drifts from the tag's
    with pytest.raises(Ntag424Error, match="integrity error"):
        link.change_key(1, KEY, bytes(16))
    assert link.tag.session is None and link.tag.keys[1] == bytes(16)


def test_change_key_checks_the_crc_and_needs_key_0(link):
    link.authenticate(0, bytes(16))
    link.change_key(1, KEY, bytes(16), version=7)
    assert link.tag.keys[1] == KEY and link.tag.versions[1] == 7
    # a key changed with the wrong old value gives a CRC that does not match
    with pytest.raises(Ntag424Error, match="integrity error"):
        link.change_key(1, bytes(16), bytes(16))
    link.select_ndef()
    link.authenticate(1, KEY)
    with pytest.raises(Ntag424Error, match="permission denied"):
        link.change_key(2, KEY, bytes(16))
    assert crc32_nk(b"123456789") == bytes.fromhex("D9C60B34")  # JAMCRC check value 340BC6D9


def test_change_file_settings_refuses_offsets_outside_the_file(link):
    link.authenticate(0, bytes(16))
    bad = bytes((0x40, 0x00, 0xE0, 0xC1, 0xFF, 0x21)) + (250).to_bytes(3, "little") * 3
    with pytest.raises(Ntag424Error, match="parameter error"):
        link.change_file_settings(2, bad)


def test_sdm_counter_moves_once_per_read_not_per_chunk(link):
    from fleet import sun
    from tools.field.ntag424 import sdm_settings

    content = ndef_file(sun.template("https://tg.example/s", "client", 1))
    link.update_binary(0, content)
    link.authenticate(0, bytes(16))
    link.change_file_settings(2, sdm_settings(content))
    link.select_ndef()
    first = link.read_binary(0, 40) + link.read_binary(40, 60)  # one read in two chunks
    assert link.tag.sdm_ctr == 1
    link.select_ndef()
    again = link.read_binary(0, 100)
    assert link.tag.sdm_ctr == 2 and again != first
    r = sun.verify_url(read_url(link), "00" * 16, "00" * 16)
    assert r.valid and r.counter == 3 and r.uid == UID.hex().upper()
