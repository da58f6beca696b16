"""AES-128 building blocks of the NTAG 424 DNA (NXP datasheet NT4H2421Gx, AN12196), shared by
the fleet's SUN verification (fleet.sun), the tag simulator (tools.sim.ntag424) and the
personalisation tool (tools.field.ntag424). AES and CMAC come from the `cryptography` package."""
from __future__ import annotations

import zlib

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

ZERO_IV = bytes(16)


def ecb(key: bytes, block: bytes) -> bytes:
    """One block through AES-128 (ECB): picc_data, IV derivation."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def ecb_decrypt(key: bytes, block: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return dec.update(block) + dec.finalize()


def cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def cmac(key: bytes, data: bytes) -> bytes:
    """The full 16-byte AES-CMAC (NIST SP 800-38B)."""
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def mac_t(key: bytes, data: bytes) -> bytes:
    """The tag's truncated MAC: the 8 odd-numbered bytes (1, 3 .. 15) of the CMAC."""
    return cmac(key, data)[1::2]


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 method 2: 0x80 then zeros, always added (a full block gets a new one)."""
    data = data + b"\x80"
    return data + bytes(-len(data) % 16)


def unpad(data: bytes) -> bytes | None:
    """The data before the 0x80 marker, or None if the padding is not there."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= 16:
        return None
    return stripped[:-1]


def crc32_nk(data: bytes) -> bytes:
    """ChangeKey's CRC32 of the new key: the JAMCRC (CRC-32 not inverted at the end), LE."""
    return ((~zlib.crc32(data)) & 0xFFFFFFFF).to_bytes(4, "little")


def rotl(data: bytes) -> bytes:
    """RndA' / RndB': rotated left by one byte."""
    return data[1:] + data[:1]


def ev2_session_keys(key: bytes, rnd_a: bytes, rnd_b: bytes) -> tuple[bytes, bytes]:
    """SesAuthENCKey and SesAuthMACKey after AuthenticateEV2First: CMAC of SV1 and SV2 (NIST
    SP 800-108 counter mode with CMAC as the PRF, one block). The context mixes both random
    numbers (byte 15 is the first byte of each):
    RndA[15:14] || (RndA[13:8] xor RndB[15:10]) || RndB[9:0] || RndA[7:0]."""
    mixed = bytes(a ^ b for a, b in zip(rnd_a[2:8], rnd_b[0:6]))
    ctx = rnd_a[0:2] + mixed + rnd_b[6:16] + rnd_a[8:16]
    enc = cmac(key, b"\xa5\x5a\x00\x01\x00\x80" + ctx)
    mac = cmac(key, b"\x5a\xa5\x00\x01\x00\x80" + ctx)
    return enc, mac
