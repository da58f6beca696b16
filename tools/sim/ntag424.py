"""An NTAG 424 DNA answering ISO 7816-4 APDUs as the chip does (datasheet NT4H2421Gx, AN12196):
the NDEF application and its three files, AuthenticateEV2First, secure messaging (CommMode
Plain, MAC and Full with the command counter and the transaction identifier), ChangeKey,
ChangeFileSettings with Secure Dynamic Messaging, ReadData/WriteData and the ISO file commands.

Each unauthenticated read of the NDEF file with SDM on mirrors fresh `picc_data` and `cmac`
(AES mode) with an incremented SDMReadCtr: the counter moves at the first read after the tag
entered the field or the file was selected, so a reader taking the file in chunks sees one
coherent message. The PN532 simulator holds one of these in its field (tools/sim/pn532.py).
Not modelled: LRP mode, originality signature, TagTamper, random ID, key versions' use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from fleet.aes128 import (cbc_decrypt, cbc_encrypt, cmac, crc32_nk, ecb, ev2_session_keys,
                          mac_t, pad, rotl, unpad)

AID = bytes.fromhex("D2760000850101")  # the NDEF application's DF name
ATS = bytes.fromhex("0675778102") + b"\x80"
FREE, NEVER = 0xE, 0xF
OK, MORE = b"\x91\x00", b"\x91\xaf"
# native status words (91 xx)
E_LENGTH, E_PERMISSION, E_PARAMETER = b"\x91\x7e", b"\x91\x9d", b"\x91\x9e"
E_NO_SUCH_KEY, E_NO_SUCH_FILE = b"\x91\x40", b"\x91\xf0"
E_INTEGRITY, E_AUTH, E_BOUNDARY, E_CMD = b"\x91\x1e", b"\x91\xae", b"\x91\xbe", b"\x91\x1c"
# ISO status words
ISO_OK, ISO_NOT_FOUND, ISO_DENIED = b"\x90\x00", b"\x6a\x82", b"\x69\x82"
ISO_WRONG_P, ISO_INS = b"\x6b\x00", b"\x6d\x00"


def _le(b: bytes) -> int:
    return int.from_bytes(b, "little")


@dataclass
class File:
    iso_id: int
    data: bytearray
    comm: int  # 0 plain, 1 MAC, 3 full
    read: int
    write: int
    rw: int
    change: int
    sdm: dict | None = None  # SDM settings when enabled (see _parse_sdm)

    def settings(self) -> bytes:
        out = bytes((0x00 | self.comm | (0x40 if self.sdm else 0),
                     (self.rw << 4) | self.change, (self.read << 4) | self.write))
        return out + b"\x00" + len(self.data).to_bytes(3, "little")


def _cc() -> bytearray:
    """The capability container (file 1, E103): one NDEF file E104 of 256 bytes, free to read
    and write; one proprietary file E105 of 128 bytes."""
    cc = bytes.fromhex("001720010000FF") + bytes.fromhex("0406E104010000 00".replace(" ", ""))
    cc += bytes.fromhex("0506E10500808283")
    return bytearray(cc + bytes(32 - len(cc)))


@dataclass
class Session:
    key_no: int
    enc: bytes
    mac: bytes
    ti: bytes
    ctr: int = 0


@dataclass
class Ntag424:
    uid: bytes
    keys: list[bytes] = field(default_factory=lambda: [bytes(16)] * 5)
    versions: list[int] = field(default_factory=lambda: [0] * 5)
    sdm_ctr: int = 0

    def __post_init__(self) -> None:
        ndef = bytearray(256)
        self.files = {1: File(0xE103, _cc(), 0, FREE, 0, 0, 0),
                      2: File(0xE104, ndef, 0, FREE, FREE, FREE, 0),
                      3: File(0xE105, bytearray(128), 3, 2, 3, 3, 0)}
        self.activate()

    # -- the field ---------------------------------------------------------------------------
    def activate(self) -> None:
        """The tag enters the field (or is selected again): nothing selected, no session."""
        self.app = False
        self.file: int | None = None
        self.session: Session | None = None
        self._auth: tuple[int, bytes] | None = None  # (key, RndB) between the two parts
        self._sdm_read: bytes | None = None  # this activation's mirrored NDEF file

    def apdu(self, c: bytes) -> bytes:
        """One C-APDU in, one R-APDU (data and status word) out."""
        if len(c) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = c[:4]
        body = c[4:]
        data = body[1:1 + body[0]] if body else b""
        if cla == 0x00:
            return self._iso(ins, p1, p2, data, body)
        if cla != 0x90 or p1 or p2:
            return b"\x6e\x00"
        if self._auth is not None and ins != 0xAF:
            self._auth = None
        handler = {0x71: self._auth1, 0xAF: self._auth2, 0x5F: self._change_file_settings,
                   0xC4: self._change_key, 0x8D: self._write_data, 0xAD: self._read_data,
                   0xF5: self._get_file_settings}.get(ins)
        if handler is None:
            return E_CMD
        if not self.app:
            return E_PERMISSION
        return handler(data)

    # -- ISO 7816-4 --------------------------------------------------------------------------
    def _iso(self, ins: int, p1: int, p2: int, data: bytes, body: bytes) -> bytes:
        if ins == 0xA4:
            return self._select(p1, data)
        if ins == 0xB0:
            if self.file is None or p1 & 0x80:
                return ISO_DENIED if self.file is None else ISO_WRONG_P
            le = body[0] if body else 0
            f = self.files[self.file]
            if not self._may(f, "read", plain_only=True):
                return ISO_DENIED
            content = self._content(self.file)
            off = (p1 << 8) | p2
            if off > len(content):
                return ISO_WRONG_P
            return content[off:off + (le or 256)] + ISO_OK
        if ins == 0xD6:
            if self.file is None:
                return ISO_DENIED
            f = self.files[self.file]
            off = (p1 << 8) | p2
            if not self._may(f, "write", plain_only=True):
                return ISO_DENIED
            if off + len(data) > len(f.data):
                return ISO_WRONG_P
            f.data[off:off + len(data)] = data
            self._sdm_read = None
            return ISO_OK
        return ISO_INS

    def _select(self, p1: int, data: bytes) -> bytes:
        if p1 == 0x04:
            if data != AID:
                return ISO_NOT_FOUND
            self.activate()
            self.app = True
            return ISO_OK
        if p1 in (0x00, 0x02) and len(data) == 2:
            iso = int.from_bytes(data, "big")
            if iso in (0x3F00, 0xE110):
                self.app, self.file = iso == 0xE110, None
                return ISO_OK
            for no, f in self.files.items():
                if f.iso_id == iso and self.app:
                    self.file, self._sdm_read = no, None
                    return ISO_OK
        return ISO_NOT_FOUND

    def _may(self, f: File, what: str, plain_only: bool = False) -> bool:
        """Free access, or a session with one of the keys the access rights name."""
        rights = {"read": (f.read, f.rw), "write": (f.write, f.rw)}[what]
        if FREE in rights:
            return True
        if plain_only and f.comm != 0:
            return False
        return self.session is not None and self.session.key_no in rights

    def _content(self, no: int) -> bytes:
        f = self.files[no]
        if not f.sdm or self.session is not None:
            return bytes(f.data)
        if self._sdm_read is None:  # a new read: the counter moves, fresh mirrors
            self.sdm_ctr += 1
            self._sdm_read = self._mirror(f)
        return self._sdm_read

    def _mirror(self, f: File) -> bytes:
        s, out = f.sdm, bytearray(f.data)
        assert s is not None
        ctr = self.sdm_ctr.to_bytes(3, "little")
        if s["meta"] < 5:
            plain = bytes((0xC7,)) + self.uid + ctr + os.urandom(5)
            out[s["picc"]:s["picc"] + 32] = ecb(self.keys[s["meta"]], plain).hex().upper().encode()
        if s["file"] < 5:
            sv2 = b"\x3c\xc3\x00\x01\x00\x80" + self.uid + ctr
            session_key = cmac(self.keys[s["file"]], sv2)
            mac = mac_t(session_key, bytes(out[s["mac_input"]:s["mac"]]))
            out[s["mac"]:s["mac"] + 16] = mac.hex().upper().encode()
        return bytes(out)

    # -- authentication ------------------------------------------------------------------------
    def _auth1(self, data: bytes) -> bytes:
        if len(data) < 2:
            return E_LENGTH
        if data[0] > 4:
            return E_NO_SUCH_KEY
        self.session = None
        rnd_b = os.urandom(16)
        self._auth = (data[0], rnd_b)
        return cbc_encrypt(self.keys[data[0]], bytes(16), rnd_b) + MORE

    def _auth2(self, data: bytes) -> bytes:
        if self._auth is None:
            return E_CMD
        key_no, rnd_b = self._auth
        self._auth = None
        if len(data) != 32:
            return E_LENGTH
        key = self.keys[key_no]
        plain = cbc_decrypt(key, bytes(16), data)
        rnd_a, rnd_b_rot = plain[:16], plain[16:]
        if rnd_b_rot != rotl(rnd_b):
            return E_AUTH
        ti = os.urandom(4)
        enc, mac = ev2_session_keys(key, rnd_a, rnd_b)
        self.session = Session(key_no, enc, mac, ti)
        return cbc_encrypt(key, bytes(16), ti + rotl(rnd_a) + bytes(12)) + OK

    # -- secure messaging -----------------------------------------------------------------
    def _iv(self, label: bytes, ctr: int) -> bytes:
        s = self.session
        assert s is not None
        return ecb(s.enc, label + s.ti + ctr.to_bytes(2, "little") + bytes(8))

    def _unwrap(self, ins: int, data: bytes, header_len: int,
                comm: int) -> tuple[bytes, bytes] | bytes:
        """(header, plain data) of a command in `comm` mode, or the error status word."""
        s = self.session
        if s is None:
            return E_AUTH
        if comm == 0:
            return data[:header_len], data[header_len:]
        if len(data) < header_len + 8:
            return E_LENGTH
        body, mac = data[:-8], data[-8:]
        mac_in = bytes((ins,)) + s.ctr.to_bytes(2, "little") + s.ti + body
        if mac_t(s.mac, mac_in) != mac:
            self.session = None
            return E_INTEGRITY
        header, payload = body[:header_len], body[header_len:]
        if comm == 3 and payload:
            if len(payload) % 16:
                self.session = None
                return E_LENGTH
            plain = unpad(cbc_decrypt(s.enc, self._iv(b"\xa5\x5a", s.ctr), payload))
            if plain is None:
                self.session = None
                return E_INTEGRITY
            payload = plain
        return header, payload

    def _wrap(self, data: bytes, comm: int) -> bytes:
        """A successful answer in `comm` mode; the command counter moves on."""
        s = self.session
        assert s is not None
        s.ctr += 1
        if comm == 0:
            return data + OK
        if comm == 3 and data:
            data = cbc_encrypt(s.enc, self._iv(b"\x5a\xa5", s.ctr), pad(data))
        mac = mac_t(s.mac, b"\x00" + s.ctr.to_bytes(2, "little") + s.ti + data)
        return data + mac + OK

    # -- commands ----------------------------------------------------------------------------
    def _change_key(self, data: bytes) -> bytes:
        got = self._unwrap(0xC4, data, 1, 3)
        if isinstance(got, bytes):
            return got
        (key_no,), plain = got
        s = self.session
        assert s is not None
        if s.key_no != 0:
            return E_PERMISSION
        if key_no > 4:
            return E_NO_SUCH_KEY
        if key_no == 0:
            if len(plain) != 17:
                return E_LENGTH
            self.keys[0], self.versions[0] = plain[:16], plain[16]
            self.session = None  # the key in use changed: the session ends, no MAC
            return OK
        if len(plain) != 21:
            return E_LENGTH
        new = bytes(a ^ b for a, b in zip(plain[:16], self.keys[key_no]))
        if crc32_nk(new) != plain[17:21]:
            self.session = None
            return E_INTEGRITY
        self.keys[key_no], self.versions[key_no] = new, plain[16]
        return self._wrap(b"", 1)

    def _change_file_settings(self, data: bytes) -> bytes:
        got = self._unwrap(0x5F, data, 1, 3)
        if isinstance(got, bytes):
            return got
        (no,), plain = got
        f = self.files.get(no)
        if f is None:
            return E_NO_SUCH_FILE
        s = self.session
        assert s is not None
        if f.change != FREE and s.key_no != f.change:
            return E_PERMISSION
        if len(plain) < 3:
            return E_LENGTH
        option, ar0, ar1 = plain[:3]
        sdm = None
        if option & 0x40:
            sdm = _parse_sdm(plain[3:], len(f.data))
            if isinstance(sdm, str):
                return E_PARAMETER
        f.comm = option & 0x03
        f.rw, f.change, f.read, f.write = ar0 >> 4, ar0 & 0xF, ar1 >> 4, ar1 & 0xF
        f.sdm = sdm
        self._sdm_read = None
        return self._wrap(b"", 1)

    def _file_args(self, ins: int, data: bytes):
        """FileNo, offset, length (and the data) of ReadData / WriteData, unwrapped in the
        file's communication mode; or the error status word."""
        if len(data) < 7:
            return E_LENGTH
        f = self.files.get(data[0])
        if f is None:
            return E_NO_SUCH_FILE
        comm = f.comm if self.session is not None else 0
        if comm == 0:
            got: tuple[bytes, bytes] | bytes = (data[:7], data[7:])
        else:
            got = self._unwrap(ins, data, 7, comm)
        if isinstance(got, bytes):
            return got
        header, payload = got
        return f, comm, _le(header[1:4]), _le(header[4:7]), payload

    def _write_data(self, data: bytes) -> bytes:
        got = self._file_args(0x8D, data)
        if isinstance(got, bytes):
            return got
        f, comm, off, length, payload = got
        if not self._may(f, "write"):
            return E_PERMISSION
        if length != len(payload):
            return E_LENGTH
        if off + length > len(f.data):
            return E_BOUNDARY
        f.data[off:off + length] = payload
        self._sdm_read = None
        return self._wrap(b"", 1 if comm else 0) if self.session else OK

    def _read_data(self, data: bytes) -> bytes:
        got = self._file_args(0xAD, data)
        if isinstance(got, bytes):
            return got
        f, comm, off, length, _ = got
        if not self._may(f, "read"):
            return E_PERMISSION
        content = self._content(data[0])
        length = length or len(content) - off
        if off + length > len(content):
            return E_BOUNDARY
        chunk = content[off:off + length]
        return self._wrap(chunk, comm) if self.session else chunk + OK

    def _get_file_settings(self, data: bytes) -> bytes:
        f = self.files.get(data[0]) if data else None
        if f is None:
            return E_NO_SUCH_FILE
        return self._wrap(f.settings(), 1) if self.session else f.settings() + OK


def _parse_sdm(b: bytes, size: int) -> dict | str:
    """The SDM part of ChangeFileSettings: options, access rights, then the offsets those
    switch on, each 3 bytes little endian (datasheet, "ChangeFileSettings")."""
    if len(b) < 3:
        return "short"
    opts, ar0, ar1 = b[:3]
    s = {"options": opts, "ctr_ret": ar0 & 0xF, "meta": ar1 >> 4, "file": ar1 & 0xF}
    if not opts & 0x01:
        return "only ASCII mirroring is modelled"
    rest = list(b[3:])

    def take() -> int:
        if len(rest) < 3:
            raise ValueError
        v = rest[0] | rest[1] << 8 | rest[2] << 16
        del rest[:3]
        return v

    try:
        if s["meta"] == FREE:
            if opts & 0x80:
                s["uid_off"] = take()
            if opts & 0x40:
                s["ctr_off"] = take()
        elif s["meta"] < 5:
            s["picc"] = take()
        if s["file"] < 5:
            s["mac_input"] = take()
            if opts & 0x10:
                return "SDMENCFileData is not modelled"
            s["mac"] = take()
        if opts & 0x20:
            s["ctr_limit"] = take()
    except ValueError:
        return "short"
    if rest or s["meta"] == FREE or not opts & 0xC0 == 0xC0:
        return "telegest mirrors encrypted UID and counter only"
    if s["file"] < 5 and not (s["mac_input"] <= s["mac"] and s["mac"] + 16 <= size):
        return "offsets out of the file"
    if s["picc"] + 32 > size:
        return "offsets out of the file"
    return s
