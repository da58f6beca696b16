"""The one-time maintenance code that opens a reader's serial console (docs/security.md).

The fleet issues it (fleet/maintenance.py), the box checks it offline (firmware/runtime/
maintenance.py), both with this module, so there is one definition of the code:

    raw  = expiry (Unix minutes, 4 bytes) | nonce (2 bytes) | mac (5 bytes)
    mac  = HMAC-SHA256(key, "<ident>|<expiry>|<nonce>")[:5]
    code = raw in Crockford base32, 18 characters typed as three groups: 7K2M9X-AB3QRT-0WZ4HN

`key` is the box's maintenance key (32 random bytes the fleet keeps and `telegest device
provision` writes to the box as the `mkey` setting). HMAC is written out here: MicroPython has
hashlib.sha256 but no hmac module.
"""
import hashlib

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I L O U
TTL_MIN = 30
_MAC = 5
_RAW = 11  # 4 + 2 + 5 bytes: 88 bits, 18 base32 digits (2 padding bits)
_DIGITS = 18


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) of bytes `msg` under bytes `key`."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    inner = bytearray(64)
    outer = bytearray(64)
    for i in range(64):
        b = key[i] if i < len(key) else 0
        inner[i] = b ^ 0x36
        outer[i] = b ^ 0x5C
    h = hashlib.sha256(bytes(inner))
    h.update(msg)
    o = hashlib.sha256(bytes(outer))
    o.update(h.digest())
    return o.digest()


def mac(key, ident, expiry_min, nonce):
    return hmac_sha256(key, ("%s|%d|%d" % (ident, expiry_min, nonce)).encode())[:_MAC]


def encode(raw):
    n = int.from_bytes(raw, "big") << 2
    out = []
    for _ in range(_DIGITS):
        out.append(ALPHABET[n & 31])
        n >>= 5
    s = "".join(reversed(out))
    return s[:6] + "-" + s[6:12] + "-" + s[12:]


def decode(text):
    """The 11 bytes of a typed code; dashes and spaces ignored, I/L read as 1 and O as 0.
    Raises ValueError."""
    n = 0
    count = 0
    for c in text.upper():
        if c == "-" or c == " ":
            continue
        c = "1" if c in "IL" else "0" if c == "O" else c
        i = ALPHABET.find(c)
        if i < 0:
            raise ValueError("not a maintenance code (letters and digits, 18 of them)")
        n = (n << 5) | i
        count += 1
    if count != _DIGITS or n & 3:
        raise ValueError("not a maintenance code (18 letters and digits: XXXXXX-XXXXXX-XXXXXX)")
    return (n >> 2).to_bytes(_RAW, "big")


def issue(key, ident, now_s, nonce, ttl_min=TTL_MIN):
    """(code, expiry in Unix seconds) of a code valid from now for `ttl_min` minutes."""
    expiry = (int(now_s) + 59) // 60 + ttl_min  # at least ttl_min minutes
    raw = expiry.to_bytes(4, "big") + (nonce & 0xFFFF).to_bytes(2, "big") \
        + mac(key, ident, expiry, nonce & 0xFFFF)
    return encode(raw), expiry * 60


def check(key, ident, code, now_s):
    """(expiry in Unix seconds, nonce) of a valid code for this box at `now_s`; else raises
    ValueError with the reason (never the code's mac)."""
    raw = decode(code)
    expiry = int.from_bytes(raw[:4], "big")
    nonce = int.from_bytes(raw[4:6], "big")
    want = mac(key, ident, expiry, nonce)
    diff = 0
    for i in range(_MAC):
        diff |= want[i] ^ raw[6 + i]
    if diff:
        raise ValueError("wrong maintenance code (issued for another box, or mistyped)")
    if expiry * 60 <= int(now_s):
        raise ValueError("this maintenance code expired %d min ago: ask the fleet for a new "
                         "one" % ((int(now_s) - expiry * 60) // 60 + 1))
    return expiry * 60, nonce
