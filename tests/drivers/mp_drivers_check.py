# Plain-assert checks of the PN532 core and NDEF, run on MicroPython by test_on_micropython.py.
import sys

from firmware import ndef
from firmware.drivers import pn532_i2c, pn532_spi, pn532_uart  # noqa: F401 - they import
from firmware.drivers.pn532 import (ACK, ERROR_FRAME, KIND_ACK, KIND_DATA, KIND_ERROR, NACK,
                                    PN532, FrameError, PN532Error, PN532Timeout, build_frame,
                                    parse_frame)
from firmware.drivers.pn532_spi import reverse_bits
from firmware.drivers.pn532_uart import WAKEUP, PN532UART

H = bytes.fromhex
assert sys.implementation.name == "micropython"

# frames, byte for byte
assert build_frame(H("02")) == H("0000ff02fed4022a00")
assert build_frame(H("14011401")) == H("0000ff05fbd41401140102" "00")
assert build_frame(H("4a0100")) == H("0000ff04fcd44a0100e100")
assert build_frame(H("40013004")) == H("0000ff05fbd440013004b700")
assert build_frame(H("4001a20461626364")) == H("0000ff09f7d44001a20461626364bb00")
assert parse_frame(H("0000ff06fad50332010607e800")) == (KIND_DATA, H("0332010607"))
assert parse_frame(ACK)[0] == KIND_ACK and parse_frame(ERROR_FRAME)[0] == KIND_ERROR
for bad, why in ((H("0000ff02fdd5151600"), "length checksum"),
                 (H("0000ff02fed5151900"), "data checksum"),
                 (H("0000ff02fed41517ff"), "postamble"), (H("0000"), "start code")):
    try:
        parse_frame(bad)
        raise AssertionError("parsed " + repr(bad))
    except FrameError as e:
        assert why in str(e), str(e)


class UART:
    def __init__(self, replies):
        self.replies = list(replies)
        self.written = bytearray()
        self.rx = bytearray()

    def write(self, b):
        self.written += b
        if b"\x00\xff" in bytes(b) and self.replies:
            self.rx += self.replies.pop(0)

    def any(self):
        return len(self.rx)

    def read(self, n):
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out


fw = H("0000ff06fad50332010607e800")
garbled = bytearray(fw)
garbled[-2] ^= 0xFF
u = UART([NACK, ACK + bytes(garbled), fw])
r = PN532(PN532UART(u), timeout_ms=50, ack_timeout_ms=10)
assert r.get_firmware_version() == (0x32, 1, 6, 7)
assert bytes(u.written) == H("0000ff02fed4022a00") * 2 + NACK
assert r.stats["nacks"] == 2 and r.stats["retries"] == 1

uid = H("04a1b2c3d4e5f6")
u = UART([ACK + build_frame(H("4b0101004400") + b"\x07" + uid, tfi=0xD5),
          ACK + build_frame(b"\x41\x00" + bytes(range(16)), tfi=0xD5)])
r = PN532(PN532UART(u), timeout_ms=50, ack_timeout_ms=10)
assert r.list_target() == uid and r.ntag_read(4) == bytes(range(16))

u = UART([])
r = PN532(PN532UART(u), ack_timeout_ms=5, retries=1)
try:
    r.get_firmware_version()
    raise AssertionError("no timeout")
except PN532Timeout as e:
    assert "not answering" in str(e)
assert bytes(u.written).count(WAKEUP) == 2 and isinstance(PN532Timeout(), PN532Error)

assert reverse_bits(H("0102d4ff")) == H("80402bff")

# NDEF
msg = ndef.encode_message([ndef.text_record("Bonjour", "fr"), ndef.uri_record("https://x.fr/1")])
mem = ndef.message_tlv(msg) + bytes(8)
recs = ndef.decode_message(ndef.find_message(mem))
assert ndef.decode_text(recs[0]) == ("fr", "Bonjour")
assert ndef.decode_uri(recs[1]) == "https://x.fr/1"
long_msg = ndef.encode_message([ndef.text_record("x" * 300)])
assert ndef.find_message(ndef.message_tlv(long_msg)) == long_msg
for bad in (H("03"), H("0310d101"), H("fe"), H("03ff0010")):
    try:
        ndef.find_message(bad)
        raise AssertionError("found in " + repr(bad))
    except ndef.NdefError:
        pass
for bad in (H("5101015441"), H("f101015441"), H("d10105544142"), H("d1")):
    try:
        ndef.decode_message(bad)
        raise AssertionError("decoded " + repr(bad))
    except ndef.NdefError:
        pass
try:
    ndef.decode_text(ndef.Record(1, b"T", b"\x02en\xff\xfe"))
    raise AssertionError("bad UTF-8 accepted")
except ndef.NdefError as e:
    assert "UTF-8" in str(e)
print("ALL OK")
