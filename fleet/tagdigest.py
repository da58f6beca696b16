"""What a phone knows of a client's static tag: a digest, never the token (issue #11).

A phone that held every client's tag token could replay any of them (type it in the QR field,
write it to a blank tag) from anywhere. So the planning carries, per client, the digest of
each static tag's content, and the organisation's salt to compute it; the phone hashes what it
reads and compares, offline. It still sends what it read, whole: only the fleet checks it.

    salt   = first 32 hex of HMAC-SHA256(organisation's tag secret, "phone-tag-digest")
    digest = first 16 hex (64 bits) of SHA-256(salt + ":" + content)

The salt is derived, not stored: it changes only with the tag secret. Knowing a digest and
the salt does not give the content back (a signed token carries 120 random-looking bits). A
SUN tag (NTAG 424 DNA) has no digest: the phone knows it by the plain `c=<client id>` of its
URL, and the proof stays in its MAC, which only the fleet can check (fleet.sun).
"""
from __future__ import annotations

import hmac
from hashlib import sha256

DIGEST_HEX = 16


def salt(tag_secret: str) -> str:
    return hmac.new(bytes.fromhex(tag_secret), b"phone-tag-digest", sha256).hexdigest()[:32]


def digest(salt_hex: str, content: str) -> str:
    return sha256(f"{salt_hex}:{content}".encode()).hexdigest()[:DIGEST_HEX]
