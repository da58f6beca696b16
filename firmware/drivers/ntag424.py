"""The SUN URL of an NTAG 424 DNA, read as a phone reads it: ISO 7816-4 APDUs through any
`apdu(c_apdu) -> r_apdu` (firmware.drivers.pn532.PN532.apdu). Plain reads only: the box holds
no tag key and verifies nothing; the fleet checks picc_data and cmac (docs/protocol.md, "SUN
tags"). Each read of the file moves the tag's counter once."""
from firmware.ndef import NdefError, decode_message, decode_uri

_SELECT_APP = b"\x00\xa4\x04\x0c\x07\xd2\x76\x00\x00\x85\x01\x01\x00"
_SELECT_NDEF = b"\x00\xa4\x00\x0c\x02\xe1\x04"


def _ok(r, what):
    if len(r) < 2 or r[-2:] != b"\x90\x00":
        raise NdefError("%s: status %s" % (what, " ".join("%02X" % b for b in r[-2:])))
    return r[:-2]


def read_url(apdu):
    """The URI of the NDEF file's first record, with the mirrors the tag wrote for this read."""
    _ok(apdu(_SELECT_APP), "select the NDEF application")
    _ok(apdu(_SELECT_NDEF), "select the NDEF file")
    n = _ok(apdu(b"\x00\xb0\x00\x00\x02"), "read NLEN")
    if len(n) != 2:
        raise NdefError("read NLEN: %d bytes" % len(n))
    n = (n[0] << 8) | n[1]
    if not 0 < n <= 254:
        raise NdefError("no NDEF message (NLEN %d)" % n)
    msg = _ok(apdu(b"\x00\xb0\x00\x02" + bytes((n,))), "read the message")
    return decode_uri(decode_message(msg)[0])
