"""A reader box reading an NTAG 424 DNA card's SUN URL (firmware.drivers.ntag424) and journaling
it with the UID, on CPython and on MicroPython from one source. The tag is a scripted APDU
responder holding an NDEF file as the chip mirrors it (the whole box against the simulated
card: tests/sun/test_reader_box.py)."""
import json

from firmware import ndef
from firmware.codec import CodecError, encode_event
from firmware.drivers.ntag424 import read_url
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from tests.firmware.fakes import Clock
from tests.firmware.support import raises, tmpdir

URL = ("https://tg.example/s?g=7&picc_data=EF963FF7828658A599F3041510671E88"
       "&cmac=94EED9EE65337086")
MSG = ndef.encode_message([ndef.uri_record(URL)])
FILE = bytes((0, len(MSG))) + MSG + bytes(256 - 2 - len(MSG))


class Tag:
    def __init__(self, file):
        self.file, self.selected, self.apdus = file, 0, []

    def apdu(self, c):
        self.apdus.append(bytes(c))
        if c[:4] == b"\x00\xa4\x04\x0c":
            self.selected = 1
            return b"\x90\x00"
        if c[:4] == b"\x00\xa4\x00\x0c":
            if not self.selected or c[5:7] != b"\xe1\x04":
                return b"\x6a\x82"
            self.selected = 2
            return b"\x90\x00"
        if c[:2] == b"\x00\xb0" and self.selected == 2:
            off = (c[2] << 8) | c[3]
            return self.file[off:off + c[4]] + b"\x90\x00"
        return b"\x6d\x00"


def test_the_url_is_read_in_four_apdus():
    tag = Tag(FILE)
    assert read_url(tag.apdu) == URL
    assert len(tag.apdus) == 4  # select the application, select the file, NLEN, the message


def test_a_blank_card_and_a_card_that_is_not_an_ntag_424():
    raises(ndef.NdefError, read_url, Tag(bytes(256)).apdu)  # blank: NLEN 0
    raises(ndef.NdefError, read_url, lambda c: b"\x6a\x82")


def test_a_sun_url_fits_in_an_events_tag_and_a_longer_one_does_not():
    ev = encode_event("in", "nfc", 1795420000, "synced", badge="04C0FFEE123456", tag=URL)
    assert json.loads(ev)["tag"] == URL
    raises(CodecError, encode_event, "in", "nfc", 1, "synced", "04C0FFEE123456", "x" * 65)
    raises(CodecError, encode_event, "in", "nfc", 1, "synced", "04C0FFEE123456",
           URL + "&p=" + "x" * 200)


def test_a_tap_is_journaled_with_the_uid_and_the_url():
    core = ReaderCore("r1", Journal(tmpdir("sun")), Planning.from_config(
        {"version": 1, "tz": "Europe/Paris", "tolerance_min": 30, "badges": ["04C0FFEE123456"],
         "visits": [[1, "04C0FFEE123456", 1795420000, 1795423600]]}), Clock(1795420000))
    assert core.tap(b"\x04\xc0\xff\xee\x12\x34\x56", tag=URL) == "in"
    (seq, payload), = core.journal.read_from(1, 2)
    e = json.loads(payload)
    assert e["badge"] == "04C0FFEE123456" and e["tag"] == URL
