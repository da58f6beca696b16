"""NDEF: TLVs on NTAG memory, records, Text and URI; every malformed input is an NdefError."""
import random

import pytest

from firmware import ndef
from firmware.drivers import ntag
from firmware.ndef import NdefError, NdefTruncated, Record
from tools.sim.pn532 import ntag_image

H = bytes.fromhex


def test_text_record_exact_bytes():
    msg = ndef.encode_message([ndef.text_record("Bonjour", "fr")])
    assert msg == H("d1010a5402") + b"frBonjour"
    assert ndef.message_tlv(msg) == H("030e") + msg + H("fe")


def test_uri_record_exact_bytes_and_prefix():
    msg = ndef.encode_message([ndef.uri_record("https://telegest.org/b/42")])
    assert msg == H("d101125504") + b"telegest.org/b/42"
    assert ndef.uri_record("https://www.x.fr").payload == b"\x02x.fr"
    assert ndef.uri_record("tel:+33123").payload == b"\x05+33123"
    assert ndef.uri_record("gopher://x").payload == b"\x00gopher://x"


def test_round_trip_several_records_with_id_and_long_payload():
    recs = [ndef.text_record("intervenant 7 — é"), ndef.uri_record("urn:nfc:x"),
            Record(ndef.TNF_MEDIA, b"application/octet-stream", bytes(300), id=b"id1"),
            Record(ndef.TNF_EMPTY, b"", b"")]
    msg = ndef.encode_message(recs)
    assert msg[0] & 0x80 and not msg[0] & 0x40  # MB on the first only
    assert ndef.decode_message(msg) == recs
    assert ndef.decode_text(recs[0]) == ("en", "intervenant 7 — é")
    assert ndef.decode_uri(ndef.decode_message(msg)[1]) == "urn:nfc:x"


def test_three_byte_tlv_length():
    msg = ndef.encode_message([ndef.text_record("x" * 400)])
    tlv = ndef.message_tlv(msg)
    assert tlv[:4] == bytes((0x03, 0xFF, len(msg) >> 8, len(msg) & 0xFF))
    assert ndef.find_message(tlv + bytes(10)) == msg


def test_find_message_skips_null_and_control_tlvs():
    msg = ndef.encode_message([ndef.text_record("a")])
    mem = H("0000") + H("0103a00c34") + H("fd00") + ndef.message_tlv(msg)
    assert ndef.find_message(mem) == msg


def test_empty_ndef_message_gives_no_records():
    assert ndef.find_message(H("0300fe")) == b""
    assert ndef.decode_message(b"") == []


TLV_ERRORS = [
    (H("fe0310"), NdefError, "no NDEF message TLV"),
    (H("000000"), NdefError, "no NDEF message TLV"),
    (b"", NdefError, "no NDEF message TLV"),
    (H("03"), NdefTruncated, "has no length"),
    (H("03ff01"), NdefTruncated, "3-byte length cut"),
    (H("03ff0010") + bytes(16), NdefError, "below 255"),
    (H("0310d101"), NdefTruncated, "runs past the end"),
]


@pytest.mark.parametrize("mem,kind,reason", TLV_ERRORS)
def test_tlv_errors(mem, kind, reason):
    with pytest.raises(kind, match=reason):
        ndef.find_message(mem)


RECORD_ERRORS = [
    (H("5101015441"), "first record lacks the MB flag"),
    (H("9101015441"), "last record lacks the ME flag"),
    (H("d101015441d101015441"), "after the ME record"),
    (H("910101544191010154 41".replace(" ", "")), "MB flag on record 1"),
    (H("f101015441"), "chunked"),
    (H("d7010154 41".replace(" ", "")), "TNF 7"),
    (H("d10105544142"), "runs past the message end"),
    (H("d1"), "header at offset 0 truncated"),
    (H("c1010000"), "payload length at offset 2 truncated"),
    (H("d901"), "truncated"),
    (H("d90101"), "id length at offset 3 truncated"),
    (H("d0010000"), "empty record"),
]


@pytest.mark.parametrize("msg,reason", RECORD_ERRORS)
def test_record_errors(msg, reason):
    with pytest.raises(NdefError, match=reason):
        ndef.decode_message(msg)


WELL_KNOWN_ERRORS = [
    (ndef.decode_text, Record(1, b"U", b"\x00x"), "not a well-known b'T' record"),
    (ndef.decode_text, Record(1, b"T", b""), "empty payload"),
    (ndef.decode_text, Record(1, b"T", b"\x82en\x00a"), "UTF-16"),
    (ndef.decode_text, Record(1, b"T", b"\x09en"), "language length 9"),
    (ndef.decode_text, Record(1, b"T", b"\x02en\xff\xfe"), "text is not valid UTF-8"),
    (ndef.decode_uri, Record(1, b"U", b""), "empty payload"),
    (ndef.decode_uri, Record(1, b"U", b"\x24x"), "reserved"),
    (ndef.decode_uri, Record(2, b"U", b"\x01x"), "not a well-known b'U' record"),
    (ndef.decode_uri, Record(1, b"U", b"\x01\xc3"), "URI is not valid UTF-8"),
]


@pytest.mark.parametrize("fn,record,reason", WELL_KNOWN_ERRORS)
def test_well_known_errors(fn, record, reason):
    with pytest.raises(NdefError, match=reason):
        fn(record)


def test_encode_errors():
    with pytest.raises(NdefError, match="at least one record"):
        ndef.encode_message([])
    with pytest.raises(NdefError, match="language code"):
        ndef.text_record("x", "")
    with pytest.raises(NdefError, match="longer than 255"):
        ndef.encode_message([Record(4, b"x" * 256, b"")])
    with pytest.raises(NdefError, match="too long for a TLV"):
        ndef.message_tlv(bytes(0xFFFF))


def test_random_garbage_only_ever_raises_ndeferror():
    rnd = random.Random(532)
    for _ in range(5000):
        blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40)))
        for fn in (ndef.find_message, ndef.decode_message):
            try:
                fn(blob)
            except NdefError:
                pass


class MemoryTag:
    """An NTAG image with the reader's ntag_read/ntag_write calls."""

    def __init__(self, img):
        self.img = img
        self.reads = 0

    def ntag_read(self, page):
        self.reads += 1
        n = len(self.img) // 4
        return bytes(self.img[((page + i) % n) * 4 + j] for i in range(4) for j in range(4))

    def ntag_write(self, page, data):
        self.img[page * 4:page * 4 + 4] = data


def test_ntag_write_then_read_message():
    tag = MemoryTag(ntag_image(H("04a1b2c3d4e5f6")))
    msg = ndef.encode_message([ndef.text_record("badge 12")])
    assert ntag.write_message(tag, msg) == 5
    tag.reads = 0
    assert ntag.read_message(tag) == msg
    assert tag.reads == 3  # capability container, then two 4-page reads


def test_ntag_message_too_big_and_missing_cc():
    tag = MemoryTag(ntag_image(H("04a1b2c3d4e5f6")))  # NTAG213: 144 bytes
    with pytest.raises(NdefError, match="does not fit in 144"):
        ntag.write_message(tag, bytes(200))
    tag.img[12] = 0
    with pytest.raises(NdefError, match="no NDEF capability container"):
        ntag.read_message(tag)


def test_ntag_unterminated_tlv_is_truncated_error():
    tag = MemoryTag(ntag_image(H("04a1b2c3d4e5f6")))
    tag.img[16:18] = H("03f0")  # claims 240 bytes in a 144-byte area
    with pytest.raises(NdefTruncated, match="runs past the end"):
        ntag.read_message(tag)
