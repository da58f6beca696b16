"""The reader's side of an NTAG 424 DNA (datasheet NT4H2421Gx, AN12196): ISO-DEP APDUs through
any `send(c_apdu) -> r_apdu` (the PN532's InDataExchange, or the simulator directly), with
AuthenticateEV2First and secure messaging; and the personalisation of a blank tag for SUN.

Personalisation (`personalise`):
1. AuthenticateEV2First with key 0: the factory key (all zeros), or the tag's own key when it
   was personalised before (the keys are derived from its UID, so a run cut short is run again);
2. the NDEF URL template written (WriteData, CommMode Plain like the file);
3. ChangeFileSettings of the NDEF file: SDM on, picc_data (UID and counter encrypted with key
   2) and the CMAC (key 1, empty input) mirrored into the URL, read free, write and change with
   key 0 only;
4. ChangeKey of keys 1 and 2, then key 0 (which ends the session);
5. one read, as a phone would, checked with the new keys.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from firmware import ndef
from fleet import sun
from fleet.aes128 import (cbc_decrypt, cbc_encrypt, crc32_nk, ecb, ev2_session_keys, mac_t,
                          pad, rotl, unpad)
from tools.errors import TelegestError

AID = bytes.fromhex("D2760000850101")
NDEF_FILE, NDEF_ISO = 2, 0xE104
PLAIN, MAC, FULL = 0, 1, 3
FACTORY_KEY = bytes(16)
_STATUS = {0x1E: "integrity error (wrong MAC or padding)", 0xAE: "authentication error "
           "(wrong key)", 0x9D: "permission denied", 0x7E: "length error",
           0x9E: "parameter error", 0x40: "no such key", 0xF0: "no such file",
           0xBE: "boundary error", 0x1C: "illegal command"}


class Ntag424Error(TelegestError):
    pass


@dataclass
class _Session:
    enc: bytes
    mac: bytes
    ti: bytes
    ctr: int = 0


class Ntag424Link:
    """One NTAG 424 DNA in the field, spoken to in APDUs."""

    def __init__(self, send: Callable[[bytes], bytes]) -> None:
        self._send = send
        self.session: _Session | None = None

    # -- ISO 7816-4 ----------------------------------------------------------------------------
    def iso(self, apdu: bytes, what: str) -> bytes:
        r = self._send(apdu)
        if len(r) < 2 or r[-2:] != b"\x90\x00":
            raise Ntag424Error(f"{what}: the tag answered {r[-2:].hex().upper() or 'nothing'}")
        return r[:-2]

    def select_ndef(self) -> None:
        self.iso(b"\x00\xa4\x04\x0c\x07" + AID + b"\x00", "select the NDEF application")
        self.iso(b"\x00\xa4\x00\x0c\x02" + NDEF_ISO.to_bytes(2, "big"), "select the NDEF file")
        self.session = None

    def read_binary(self, offset: int, n: int) -> bytes:
        return self.iso(b"\x00\xb0" + offset.to_bytes(2, "big") + bytes((n & 0xFF,)),
                        "ISOReadBinary")

    def update_binary(self, offset: int, data: bytes) -> None:
        for k in range(0, len(data), 0x80):
            part = data[k:k + 0x80]
            self.iso(b"\x00\xd6" + (offset + k).to_bytes(2, "big") + bytes((len(part),)) + part,
                     "ISOUpdateBinary")

    # -- native commands -------------------------------------------------------------------------
    def native(self, ins: int, data: bytes = b"") -> tuple[bytes, int]:
        apdu = bytes((0x90, ins, 0, 0)) + (bytes((len(data),)) + data if data else b"") + b"\x00"
        r = self._send(apdu)
        if len(r) < 2 or r[-2] != 0x91:
            raise Ntag424Error(f"command {ins:02X}: not an NTAG 424 answer ({r.hex()})")
        return r[:-2], r[-1]

    def _ok(self, ins: int, data: bytes = b"") -> bytes:
        out, sw = self.native(ins, data)
        if sw != 0x00:
            self.session = None
            raise Ntag424Error(f"command {ins:02X}: {_STATUS.get(sw, f'status 91{sw:02X}')}")
        return out

    def authenticate(self, key_no: int, key: bytes) -> None:
        """AuthenticateEV2First, both parts; the session keys of SV1/SV2."""
        self.session = None
        enc_b, sw = self.native(0x71, bytes((key_no, 0)))
        if sw != 0xAF or len(enc_b) != 16:
            raise Ntag424Error(f"AuthenticateEV2First key {key_no}: "
                               f"{_STATUS.get(sw, f'status 91{sw:02X}')}")
        rnd_b = cbc_decrypt(key, bytes(16), enc_b)
        rnd_a = os.urandom(16)
        out = self._ok(0xAF, cbc_encrypt(key, bytes(16), rnd_a + rotl(rnd_b)))
        if len(out) != 32:
            raise Ntag424Error("AuthenticateEV2First: a short answer")
        plain = cbc_decrypt(key, bytes(16), out)
        if plain[4:20] != rotl(rnd_a):
            raise Ntag424Error("AuthenticateEV2First: the tag did not prove it knows the key")
        enc, mac = ev2_session_keys(key, rnd_a, rnd_b)
        self.session = _Session(enc, mac, plain[:4])

    def _iv(self, label: bytes, ctr: int) -> bytes:
        s = self.session
        assert s is not None
        return ecb(s.enc, label + s.ti + ctr.to_bytes(2, "little") + bytes(8))

    def secure(self, ins: int, header: bytes, data: bytes, comm: int) -> bytes:
        """A command in CommMode MAC or Full; the answer's data, its MAC checked."""
        s = self.session
        if s is None:
            raise Ntag424Error(f"command {ins:02X} needs an authenticated session")
        if comm == FULL and data:
            data = cbc_encrypt(s.enc, self._iv(b"\xa5\x5a", s.ctr), pad(data))
        body = header + data
        mac = mac_t(s.mac, bytes((ins,)) + s.ctr.to_bytes(2, "little") + s.ti + body)
        out, sw = self.native(ins, body + mac)
        if sw != 0x00:
            self.session = None
            raise Ntag424Error(f"command {ins:02X}: {_STATUS.get(sw, f'status 91{sw:02X}')}")
        s.ctr += 1
        if ins == 0xC4 and not out:  # ChangeKey of the key in use: no MAC, the session ends
            self.session = None
            return b""
        if len(out) < 8 or mac_t(s.mac, b"\x00" + s.ctr.to_bytes(2, "little") + s.ti
                                 + out[:-8]) != out[-8:]:
            self.session = None
            raise Ntag424Error(f"command {ins:02X}: the answer's MAC is wrong")
        out = out[:-8]
        if comm == FULL and out:
            plain = unpad(cbc_decrypt(s.enc, self._iv(b"\x5a\xa5", s.ctr), out))
            if plain is None:
                raise Ntag424Error(f"command {ins:02X}: the answer's padding is wrong")
            out = plain
        return out

    def change_key(self, key_no: int, new: bytes, old: bytes, version: int = 1) -> None:
        """Key 0 (the one authenticated with) is sent as is; another key XOR its old value,
        with a CRC32 of the new one."""
        if key_no == 0:
            data = new + bytes((version,))
        else:
            data = bytes(a ^ b for a, b in zip(new, old)) + bytes((version,)) + crc32_nk(new)
        self.secure(0xC4, bytes((key_no,)), data, FULL)

    def change_file_settings(self, file_no: int, settings: bytes) -> None:
        self.secure(0x5F, bytes((file_no,)), settings, FULL)

    def write_data(self, file_no: int, offset: int, data: bytes, comm: int = FULL) -> None:
        header = bytes((file_no,)) + offset.to_bytes(3, "little") + len(data).to_bytes(3,
                                                                                       "little")
        if comm == PLAIN:
            self._ok(0x8D, header + data)
            self._count()
        else:
            self.secure(0x8D, header, data, comm)

    def read_data(self, file_no: int, offset: int, length: int, comm: int = FULL) -> bytes:
        header = bytes((file_no,)) + offset.to_bytes(3, "little") + length.to_bytes(3, "little")
        if comm == PLAIN:
            out = self._ok(0xAD, header)
            self._count()
            return out
        return self.secure(0xAD, header, b"", comm)

    def _count(self) -> None:
        """A plain command inside a session still moves the command counter."""
        if self.session is not None:
            self.session.ctr += 1


# -- the NDEF file ----------------------------------------------------------------------------
def ndef_file(url: str) -> bytes:
    """The NDEF file's content for one URI record: NLEN (2 bytes, big endian), the message."""
    message = ndef.encode_message([ndef.uri_record(url)])
    return len(message).to_bytes(2, "big") + message


def read_url(link: Ntag424Link) -> str:
    """What a phone reads: the NDEF file's URI record (with SDM, fresh mirrors each time)."""
    link.select_ndef()
    n = int.from_bytes(link.read_binary(0, 2), "big")
    if not 0 < n <= 254:
        raise Ntag424Error(f"the NDEF file holds no message (NLEN {n}): personalise the tag")
    message = link.read_binary(2, n)
    try:
        return ndef.decode_uri(ndef.decode_message(message)[0])
    except (ndef.NdefError, IndexError) as e:
        raise Ntag424Error(f"the NDEF file holds no URI record ({e})") from e


def sdm_settings(content: bytes) -> bytes:
    """ChangeFileSettings' data for the NDEF file holding `content` (a template from
    fleet.sun.template): SDM with ASCII mirrors of picc_data (key 2) and the CMAC (key 1) over
    an empty input, the counter not readable on its own; read free, the rest key 0."""
    picc = content.find(b"picc_data=") + len(b"picc_data=")
    mac = content.find(b"cmac=") + len(b"cmac=")
    if picc < 10 or mac < 5:
        raise Ntag424Error("the URL template has no picc_data= and cmac=")
    off = (lambda v: v.to_bytes(3, "little"))
    return (bytes((0x40, 0x00, 0xE0))  # SDM on, plain; RW key 0, change key 0; read E, write 0
            + bytes((0xC1, 0xFF, (sun.KEY_META << 4) | sun.KEY_FILE))  # UID+ctr mirrors, ASCII
            + off(picc) + off(mac) + off(mac))


@dataclass
class Personalised:
    uid: str
    url: str  # the check read
    counter: int


def personalise(link: Ntag424Link, uid: bytes, keys: sun.TagKeys, url: str,
                factory_key: bytes = FACTORY_KEY) -> Personalised:
    """Make a blank NTAG 424 DNA a SUN tag with `keys` and the URL template `url`."""
    content = ndef_file(url)
    if len(content) > 256:
        raise Ntag424Error(f"the URL takes {len(content)} bytes, the NDEF file 256")
    link.select_ndef()
    old = sun.TagKeys(factory_key, bytes(16), bytes(16))
    try:
        link.authenticate(0, factory_key)
    except Ntag424Error:
        link.select_ndef()  # not blank: ours from a run cut short, or someone else's tag
        try:
            link.authenticate(0, keys.app)
        except Ntag424Error:
            raise Ntag424Error("this tag's key 0 is neither the factory key nor the one "
                               "telegest derives for it: not a blank NTAG 424 DNA") from None
        old = keys
    link.write_data(NDEF_FILE, 0, content, PLAIN)
    link.change_file_settings(NDEF_FILE, sdm_settings(content))
    link.change_key(sun.KEY_FILE, keys.file, old.file)
    link.change_key(sun.KEY_META, keys.meta, old.meta)
    link.change_key(0, keys.app, old.app)
    read = read_url(link)
    result = sun.verify_url(read, keys.meta.hex(), keys.file.hex())
    if not result.valid or result.uid != uid.hex().upper():
        raise Ntag424Error("the written tag does not give a valid SUN read: "
                           f"{result.reason or 'another UID'}")
    assert result.counter is not None
    return Personalised(result.uid, read, result.counter)
