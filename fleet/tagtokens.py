"""Signed client tokens: what a client's NFC tag and QR code carry (docs/protocol.md, "Client tags").

    TG1.<organisation id>.<client id>.<serial>.<mac>

`serial` is 8 base32 characters drawn at random when the fleet issues the tag (a replacement gets
a new one); `mac` is the first 16 base32 characters (80 bits) of HMAC-SHA256 over
"TG1.<org>.<client>.<serial>" with the organisation's own secret (`organisations.tag_secret`).
Only upper-case letters, digits and dots: a QR code holds it in alphanumeric mode, and a token
fits the protocol's 64-character `tag` field with room to spare.

A token that is not signed by the organisation cannot be made up from a client's number, and a
replaced tag's token (a photographed QR code, a copied NDEF record) stops matching: the fleet
flags the first as `forged_tag` and the second as `revoked_badge`.
"""
from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass
from hashlib import sha256

PREFIX = "TG1"
_SHAPE = re.compile(r"^TG1\.([1-9][0-9]{0,9})\.([1-9][0-9]{0,9})\.([A-Z2-7]{8})\.([A-Z2-7]{16})$")


@dataclass(frozen=True)
class TagToken:
    organisation_id: int
    client_id: int
    serial: str
    mac: str

    def __str__(self) -> str:
        return f"{PREFIX}.{self.organisation_id}.{self.client_id}.{self.serial}.{self.mac}"


def new_secret() -> str:
    """An organisation's tag secret: 32 random bytes, hex."""
    return secrets.token_hex(32)


def _mac(secret: str, org_id: int, client_id: int, serial: str) -> str:
    msg = f"{PREFIX}.{org_id}.{client_id}.{serial}".encode()
    digest = hmac.new(bytes.fromhex(secret), msg, sha256).digest()
    return base64.b32encode(digest).decode()[:16]


def mint(secret: str, org_id: int, client_id: int, serial: str | None = None) -> str:
    """A new signed token for a client (a fresh random serial unless one is given)."""
    serial = serial or base64.b32encode(secrets.token_bytes(5)).decode()
    return str(TagToken(org_id, client_id, serial, _mac(secret, org_id, client_id, serial)))


def looks_signed(token: str) -> bool:
    """Whether the token claims to be one of ours (starts with TG1.), valid or not."""
    return token.startswith(PREFIX + ".")


def parse(token: str) -> TagToken | None:
    """The token's parts, or None if it is not shaped like a signed token."""
    m = _SHAPE.match(token)
    if not m:
        return None
    return TagToken(int(m[1]), int(m[2]), m[3], m[4])


def verify(secret: str, org_id: int, token: str) -> str | None:
    """None if `token` was signed by organisation `org_id`; else what is wrong, in words."""
    t = parse(token)
    if t is None:
        return "not a TG1 token (TG1.<org>.<client>.<serial>.<mac>)"
    if t.organisation_id != org_id:
        return f"issued by organisation {t.organisation_id}, not this one ({org_id})"
    if not hmac.compare_digest(t.mac, _mac(secret, t.organisation_id, t.client_id, t.serial)):
        return "its signature does not match: not issued by this organisation"
    return None
