"""The PN532 frames and core through the UART transport, and NDEF, on CPython and on MicroPython
from one source, against the shared scripted UART (tests/firmware/fakes.py). The transports
against the PN532 simulator, and NDEF in depth: tests/drivers/ (CPython)."""
import binascii

from firmware import ndef
from firmware.drivers import pn532_i2c, pn532_spi, pn532_uart  # noqa: F401 - they import
from firmware.drivers.pn532 import (ACK, ERROR_FRAME, KIND_ACK, KIND_DATA, KIND_ERROR, NACK,
                                    PN532, FrameError, PN532Error, PN532Timeout, build_frame,
                                    parse_frame)
from firmware.drivers.pn532_spi import reverse_bits
from firmware.drivers.pn532_uart import WAKEUP, PN532UART
from tests.firmware.fakes import ScriptedUART
from tests.firmware.support import raises


def H(text):
    return binascii.unhexlify(text)


def test_frames_byte_for_byte():
    assert build_frame(H("02")) == H("0000ff02fed4022a00")
    assert build_frame(H("14011401")) == H("0000ff05fbd41401140102" "00")
    assert build_frame(H("4a0100")) == H("0000ff04fcd44a0100e100")
    assert build_frame(H("40013004")) == H("0000ff05fbd440013004b700")
    assert build_frame(H("4001a20461626364")) == H("0000ff09f7d44001a20461626364bb00")
    assert parse_frame(H("0000ff06fad50332010607e800")) == (KIND_DATA, H("0332010607"))
    assert parse_frame(ACK)[0] == KIND_ACK and parse_frame(ERROR_FRAME)[0] == KIND_ERROR


def test_bad_frames_say_what_is_wrong():
    for bad, why in ((H("0000ff02fdd5151600"), "length checksum"),
                     (H("0000ff02fed5151900"), "data checksum"),
                     (H("0000ff02fed41517ff"), "postamble"), (H("0000"), "start code")):
        with raises(FrameError) as e:
            parse_frame(bad)
        assert why in str(e.value), str(e.value)


def test_a_garbled_answer_is_nacked_and_asked_again():
    fw = H("0000ff06fad50332010607e800")
    garbled = bytearray(fw)
    garbled[-2] ^= 0xFF
    u = ScriptedUART([NACK, ACK + bytes(garbled), fw])
    r = PN532(PN532UART(u), timeout_ms=50, ack_timeout_ms=10)
    assert r.get_firmware_version() == (0x32, 1, 6, 7)
    assert bytes(u.written) == H("0000ff02fed4022a00") * 2 + NACK
    assert r.stats["nacks"] == 2 and r.stats["retries"] == 1


def test_a_card_listed_and_read():
    uid = H("04a1b2c3d4e5f6")
    u = ScriptedUART([ACK + build_frame(H("4b0101004400") + b"\x07" + uid, tfi=0xD5),
                      ACK + build_frame(b"\x41\x00" + bytes(range(16)), tfi=0xD5)])
    r = PN532(PN532UART(u), timeout_ms=50, ack_timeout_ms=10)
    assert r.list_target() == uid and r.ntag_read(4) == bytes(range(16))


def test_a_silent_reader_times_out_after_a_wakeup_each_try():
    u = ScriptedUART([])
    r = PN532(PN532UART(u), ack_timeout_ms=5, retries=1)
    with raises(PN532Timeout) as e:
        r.get_firmware_version()
    assert "not answering" in str(e.value)
    assert bytes(u.written).count(WAKEUP) == 2 and isinstance(PN532Timeout(), PN532Error)


def test_spi_bit_order():
    assert reverse_bits(H("0102d4ff")) == H("80402bff")


def test_ndef_text_and_uri_records():
    msg = ndef.encode_message([ndef.text_record("Bonjour", "fr"),
                               ndef.uri_record("https://x.fr/1")])
    mem = ndef.message_tlv(msg) + bytes(8)
    recs = ndef.decode_message(ndef.find_message(mem))
    assert ndef.decode_text(recs[0]) == ("fr", "Bonjour")
    assert ndef.decode_uri(recs[1]) == "https://x.fr/1"
    long_msg = ndef.encode_message([ndef.text_record("x" * 300)])
    assert ndef.find_message(ndef.message_tlv(long_msg)) == long_msg


def test_ndef_refusals():
    for bad in (H("03"), H("0310d101"), H("fe"), H("03ff0010")):
        raises(ndef.NdefError, ndef.find_message, bad)
    for bad in (H("5101015441"), H("f101015441"), H("d10105544142"), H("d1")):
        raises(ndef.NdefError, ndef.decode_message, bad)
    with raises(ndef.NdefError) as e:
        ndef.decode_text(ndef.Record(1, b"T", b"\x02en\xff\xfe"))
    assert "UTF-8" in str(e.value)
