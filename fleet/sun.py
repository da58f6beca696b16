"""Secure Unique NFC (SUN) reads of NTAG 424 DNA tags, verified as in NXP AN12196 (AES mode).

Every read of a personalised tag yields an NDEF URL such as

    https://tg.example/s?c=12&picc_data=EF963FF7828658A599F3041510671E88&cmac=94EED9EE65337086

`picc_data` is one AES-128 block encrypted (ECB) with the tag's SDM meta read key: PICCDataTag
(0xC7: UID and counter mirrored, UID of 7 bytes), the UID, the 3-byte SDMReadCtr (little
endian), random padding. `cmac` is the AES-CMAC, truncated to its 8 odd bytes, of the bytes the
tag mirrored between SDMMACInputOffset and SDMMACOffset (empty in telegest's template), keyed
with a session key derived per read from the SDM file read key:
KSesSDMFileReadMAC = CMAC(key, 3CC3 0001 0080 || UID || SDMReadCtr) (SV2, NIST SP 800-108).

`c=<client id>` (a client tag) or `g=<caregiver id>` (a caregiver card) is a plain reference:
the phone recognises the home offline by it, the fleet finds the candidate tags by it; the proof
is only in the MAC, which only the fleet can check.

Keys: each tag gets its own three AES keys, derived with HKDF-SHA256 (RFC 5869) from the
organisation's SUN master key (`organisations.sun_master_key`, 32 random bytes that never leave
the fleet), with info `telegest/ntag424/<purpose>/<UID>`: one tag's keys, read out of a tag or a
personalisation log, give nothing about another tag's. HKDF rather than AN10922 because the
keys are only ever derived here, never by a SAM or a reader.

Every function here answers bad input with a reason in words; none raises.
"""
from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fleet.aes128 import cmac, ecb_decrypt, mac_t

PICC_TAG = 0xC7  # UID mirrored (bit 7), SDMReadCtr mirrored (bit 6), UID length 7
KEY_APP, KEY_FILE, KEY_META = 0, 1, 2  # AN12196's example: SDMFileRead key 1, SDMMetaRead key 2
_HEX = re.compile(r"^[0-9A-Fa-f]*$")


@dataclass(frozen=True)
class TagKeys:
    """The three keys written on one tag: application master (0), SDM file read (1), SDM meta
    read (2)."""
    app: bytes
    file: bytes
    meta: bytes


@dataclass(frozen=True)
class SunRead:
    """A SUN URL taken apart (nothing verified yet)."""
    picc: bytes
    mac: bytes
    kind: str | None  # "client" (c=) or "caregiver" (g=), None when the URL has no reference
    ref: int | None


@dataclass(frozen=True)
class SunResult:
    uid: str | None  # 14 upper-case hex digits, when picc_data decrypted to a tag's data
    counter: int | None
    valid: bool
    reason: str | None = None

    def as_json(self) -> dict:
        out: dict = {"uid": self.uid, "counter": self.counter, "valid": self.valid}
        if self.reason:
            out["reason"] = self.reason
        return out


def new_master_key() -> str:
    """An organisation's SUN master key: 32 random bytes, hex."""
    import secrets

    return secrets.token_hex(32)


def diversify(master: bytes, uid: bytes, purpose: str) -> bytes:
    info = b"telegest/ntag424/" + purpose.encode() + b"/" + uid.hex().upper().encode()
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(master)


def tag_keys(master_hex: str, uid: bytes) -> TagKeys:
    master = bytes.fromhex(master_hex)
    return TagKeys(diversify(master, uid, "app"), diversify(master, uid, "file"),
                   diversify(master, uid, "meta"))


def looks_sun(text: str | None) -> bool:
    """Whether a clock event's `tag` claims to be a SUN read (valid or not)."""
    return bool(text) and "picc_data=" in text and "cmac=" in text


def parse_url(text: str) -> SunRead | str:
    """The URL's parts, or what is wrong with it, in words."""
    try:
        query = parse_qs(urlsplit(text.strip()).query, keep_blank_values=True)
    except ValueError as e:
        return f"not a URL ({e})"
    picc, mac = query.get("picc_data", []), query.get("cmac", [])
    if len(picc) != 1 or len(mac) != 1:
        return "a SUN URL carries picc_data and cmac once each"
    picc_hex, mac_hex = picc[0], mac[0]
    for name, value, size in (("picc_data", picc_hex, 16), ("cmac", mac_hex, 8)):
        if not _HEX.match(value):
            return f"{name} is not hexadecimal"
        if len(value) != 2 * size:
            return (f"{name} has {len(value)} hex digits, not {2 * size}"
                    + (" (LRP mode is not supported)" if name == "picc_data"
                       and len(value) == 48 else ""))
    kind = ref = None
    for key, name in (("c", "client"), ("g", "caregiver")):
        value = query.get(key)
        if value:
            if not (value[0].isascii() and value[0].isdigit()) or len(value[0]) > 10:
                return f"the reference {key}={value[0]!r} is not a number"
            kind, ref = name, int(value[0])
    return SunRead(bytes.fromhex(picc_hex), bytes.fromhex(mac_hex), kind, ref)


def decrypt_picc(meta_key: bytes, picc: bytes) -> tuple[bytes, int] | str:
    """(UID, SDMReadCtr) from picc_data, or why it is not a tag's data under this key."""
    plain = ecb_decrypt(meta_key, picc)
    if plain[0] != PICC_TAG:
        return ("picc_data does not decrypt to an NTAG 424 read under this key "
                "(another tag's data, another key, or made up)")
    return plain[1:8], int.from_bytes(plain[8:11], "little")


def sdm_mac(file_key: bytes, uid: bytes, counter: int, data: bytes = b"") -> bytes:
    """The 8-byte SDMMAC over `data` (the mirrored MAC input; empty in our template)."""
    sv2 = b"\x3c\xc3\x00\x01\x00\x80" + uid + counter.to_bytes(3, "little")
    return mac_t(cmac(file_key, sv2), data)


def check(read: SunRead, meta_key: bytes, file_key: bytes, data: bytes = b"") -> SunResult:
    """Decrypt, then verify the MAC in constant time."""
    picc = decrypt_picc(meta_key, read.picc)
    if isinstance(picc, str):
        return SunResult(None, None, False, picc)
    uid, counter = picc
    ok = hmac.compare_digest(sdm_mac(file_key, uid, counter, data), read.mac)
    return SunResult(uid.hex().upper(), counter, ok,
                     None if ok else "the cmac does not match: a forged read, or one copied "
                                     "from another tag")


def _key(name: str, text: str) -> bytes | str:
    text = text.strip()
    if len(text) != 32 or not _HEX.match(text):
        return f"the {name} key is 32 hex digits (AES-128), got {len(text)} characters"
    return bytes.fromhex(text)


def verify_url(url: str, meta_key_hex: str, file_key_hex: str) -> SunResult:
    """One read checked offline with known keys (`telegest badge sun`)."""
    meta = _key("meta read", meta_key_hex)
    file = _key("file read", file_key_hex)
    for k in (meta, file):
        if isinstance(k, str):
            return SunResult(None, None, False, k)
    read = parse_url(url)
    if isinstance(read, str):
        return SunResult(None, None, False, read)
    return check(read, meta, file)  # type: ignore[arg-type]


def template(base: str, kind: str, ref: int) -> str:
    """The URL written on a tag, with room the tag fills on every read (zeros here)."""
    sep = "&" if "?" in base else "?"
    key = "c" if kind == "client" else "g"
    return f"{base}{sep}{key}={ref}&picc_data={'0' * 32}&cmac={'0' * 16}"
