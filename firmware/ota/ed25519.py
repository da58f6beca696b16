"""Ed25519 signature verification (RFC 8032) in plain Python, for the update bundles.

Verify only: the device never signs. MicroPython's hashlib has no SHA-512 (the ESP32 and the
WebAssembly builds have sha256 only), so a small SHA-512 is here too; the message verified is
short (the bundle's manifest digest, see firmware/ota.py), so it hashes two blocks. Points are
in extended coordinates with the complete addition formula (a = -1), used for doubling too;
the two scalar multiplications share their doublings (Straus). Nothing is computed at import.
Not constant time: verification handles only public data.
"""
try:
    import hashlib
    _sha512 = hashlib.sha512
except (ImportError, AttributeError):
    _sha512 = None

_P = 2 ** 255 - 19
_L = 2 ** 252 + 27742317777372353535851937790883648493
_M64 = 0xFFFFFFFFFFFFFFFF
_K = '428a2f98d728ae227137449123ef65cdb5c0fbcfec4d3b2fe9b5dba58189dbbc3956c25bf348b53859f111f1b605d019923f82a4af194f9bab1c5ed5da6d8118d807aa98a303024212835b0145706fbe243185be4ee4b28c550c7dc3d5ffb4e272be5d74f27b896f80deb1fe3b1696b19bdc06a725c71235c19bf174cf692694e49b69c19ef14ad2efbe4786384f25e30fc19dc68b8cd5b5240ca1cc77ac9c652de92c6f592b02754a7484aa6ea6e4835cb0a9dcbd41fbd476f988da831153b5983e5152ee66dfaba831c66d2db43210b00327c898fb213fbf597fc7beef0ee4c6e00bf33da88fc2d5a79147930aa72506ca6351e003826f142929670a0e6e7027b70a8546d22ffc2e1b21385c26c9264d2c6dfc5ac42aed53380d139d95b3df650a73548baf63de766a0abb3c77b2a881c2c92e47edaee692722c851482353ba2bfe8a14cf10364a81a664bbc423001c24b8b70d0f89791c76c51a30654be30d192e819d6ef5218d69906245565a910f40e35855771202a106aa07032bbd1b819a4c116b8d2d0c81e376c085141ab532748774cdf8eeb9934b0bcb5e19b48a8391c0cb3c5c95a634ed8aa4ae3418acb5b9cca4f7763e373682e6ff3d6b2b8a3748f82ee5defb2fc78a5636f43172f6084c87814a1f0ab728cc702081a6439ec90befffa23631e28a4506cebde82bde9bef9a3f7b2c67915c67178f2e372532bca273eceea26619cd186b8c721c0c207eada7dd6cde0eb1ef57d4f7fee6ed17806f067aa72176fba0a637dc5a2c898a6113f9804bef90dae1b710b35131c471b28db77f523047d8432caab7b40c724933c9ebe0a15c9bebc431d67c49c100d4c4cc5d4becb3e42b6597f299cfc657e2a5fcb6fab3ad6faec6c44198c4a475817'
_H = '6a09e667f3bcc908bb67ae8584caa73b3c6ef372fe94f82ba54ff53a5f1d36f1510e527fade682d19b05688c2b3e6c1f1f83d9abfb41bd6b5be0cd19137e2179'


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _M64


def sha512(data):
    """SHA-512 digest of bytes (hashlib's when the port has it)."""
    if _sha512 is not None:
        return _sha512(data).digest()
    k = [int(_K[i:i + 16], 16) for i in range(0, 1280, 16)]
    h = [int(_H[i:i + 16], 16) for i in range(0, 128, 16)]
    n = len(data)
    data = bytes(data) + b"\x80" + bytes((111 - n) % 128) + (n * 8).to_bytes(16, "big")
    w = [0] * 80
    for off in range(0, len(data), 128):
        for i in range(16):
            w[i] = int.from_bytes(data[off + 8 * i:off + 8 * i + 8], "big")
        for i in range(16, 80):
            x, y = w[i - 15], w[i - 2]
            s0 = _rotr(x, 1) ^ _rotr(x, 8) ^ (x >> 7)
            s1 = _rotr(y, 19) ^ _rotr(y, 61) ^ (y >> 6)
            w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & _M64
        a, b, c, d, e, f, g, hh = h
        for i in range(80):
            t1 = (hh + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41))
                  + ((e & f) ^ (~e & g)) + k[i] + w[i]) & _M64
            t2 = ((_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39))
                  + ((a & b) ^ (a & c) ^ (b & c))) & _M64
            hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & _M64, c, b, a, (t1 + t2) & _M64
        h = [(x + y) & _M64 for x, y in zip(h, (a, b, c, d, e, f, g, hh))]
    return b"".join(x.to_bytes(8, "big") for x in h)


def _d():
    return -121665 * pow(121666, _P - 2, _P) % _P


def _add(p, q, d2):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * d2 * t2 % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _decode(s, d):
    """The point encoded in 32 bytes, or None when it is not on the curve."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    yy = y * y % _P
    x2 = (yy - 1) * pow(d * yy + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
        if (x * x - x2) % _P:
            return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _encode(p):
    x, y, z, _ = p
    zi = pow(z, _P - 2, _P)
    x, y = x * zi % _P, y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def verify(public, message, signature):
    """True when `signature` (64 bytes) is `public`'s (32 bytes) Ed25519 signature of
    `message`. Never raises on bad input: anything malformed is False."""
    try:
        if len(public) != 32 or len(signature) != 64:
            return False
        d = _d()
        a = _decode(bytes(public), d)
        r = bytes(signature[:32])
        s = int.from_bytes(bytes(signature[32:]), "little")
        if a is None or s >= _L or _decode(r, d) is None:
            return False
        h = int.from_bytes(sha512(r + bytes(public) + bytes(message)), "little") % _L
        # [s]B - [h]A must encode as R
        gy = 4 * pow(5, _P - 2, _P) % _P
        g = _decode(gy.to_bytes(32, "little"), d)
        na = ((_P - a[0]) % _P, a[1], a[2], (_P - a[3]) % _P)
        d2 = 2 * d % _P
        both = _add(g, na, d2)
        q = (0, 1, 1, 0)
        for i in range(255, -1, -1):
            q = _add(q, q, d2)
            bs, bh = (s >> i) & 1, (h >> i) & 1
            if bs and bh:
                q = _add(q, both, d2)
            elif bs:
                q = _add(q, g, d2)
            elif bh:
                q = _add(q, na, d2)
        return _encode(q) == r
    except Exception:
        return False
