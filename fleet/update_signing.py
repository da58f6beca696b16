"""The release key: keys, and the signatures of bundles and offers (docs/updates.md).

The private key stays on the release manager's machine, encrypted with a passphrase when
`keygen` is given one (PKCS#8, `BestAvailableEncryption`). It signs two things:
- a bundle's manifest: SIGNED_PREFIX + sha256(manifest) (32 bytes), what firmware older than
  signed offers checks and what the fleet checks at upload;
- each offer: firmware.ota.offer_message(oid, exp, ch, v, mh), its id, expiry, channel,
  version and manifest digest, what the device checks. A rollout carries the signed offer to
  the devices unchanged: the fleet never holds the key, so it cannot make or change one.
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets
from typing import TYPE_CHECKING, Iterable

from firmware.ota import SIGNED_PREFIX, check_channel, offer_message

if TYPE_CHECKING:
    from fleet.models import UpdateBundle
    from fleet.updates import Bundle


class UpdateError(Exception):
    """Refused: `status` is the HTTP status the API answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def signed_message(manifest: bytes) -> bytes:
    return SIGNED_PREFIX + hashlib.sha256(manifest).digest()


def keygen(passphrase: bytes | None = None) -> tuple[bytes, str]:
    """A new signing key: (private key PEM, public key hex for firmware/trust.py). With a
    passphrase the PEM is encrypted (PKCS#8, the best encryption `cryptography` offers)."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    enc = ser.BestAvailableEncryption(passphrase) if passphrase else ser.NoEncryption()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, enc)
    return pem, key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()


def key_is_encrypted(private_pem: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in private_pem


def load_private_key(private_pem: bytes, passphrase: bytes | None = None):
    """The Ed25519 private key of a PEM file, decrypted with `passphrase` when it is
    encrypted; UpdateError (422) for a wrong or missing passphrase, or another kind of key."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    encrypted = key_is_encrypted(private_pem)
    if encrypted and not passphrase:
        raise UpdateError(422, "the key file is protected by a passphrase: give it")
    try:
        key = ser.load_pem_private_key(private_pem, password=passphrase if encrypted else None)
    except (ValueError, TypeError):
        if encrypted:
            raise UpdateError(422, "wrong passphrase for the key file") from None
        raise UpdateError(422, "the key file is not a PEM private key") from None
    except Exception:  # cryptography's UnsupportedAlgorithm and the like
        raise UpdateError(422, "the key file is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UpdateError(422, "the key file is not an Ed25519 private key")
    return key


def sign_manifest(private_pem: bytes, manifest: bytes, passphrase: bytes | None = None) -> bytes:
    return load_private_key(private_pem, passphrase).sign(signed_message(manifest))


def sign_offer(private_pem: bytes, bundle: Bundle, channel: str, exp: int,
               oid: int | None = None, passphrase: bytes | None = None) -> dict:
    """The signed offer of `bundle` on `channel` until `exp` (Unix s): {"oid", "exp", "ch",
    "v", "mh", "sig"}. `oid` defaults to a random 31-bit id."""
    try:
        check_channel(channel)
    except ValueError:
        raise UpdateError(422, f"channel {channel!r}: 1 to 16 of a-z 0-9 -") from None
    oid = secrets.randbelow(2**31 - 1) + 1 if oid is None else oid
    if not isinstance(oid, int) or oid < 0:
        raise UpdateError(422, "the offer id is a positive integer")
    key = load_private_key(private_pem, passphrase)
    sig = key.sign(offer_message(oid, int(exp), channel, bundle.version, bundle.sha256))
    return {"oid": oid, "exp": int(exp), "ch": channel, "v": bundle.version,
            "mh": bundle.sha256, "sig": base64.b64encode(sig).decode()}


def verify_offer(keys: Iterable[str], offer: dict) -> bool:
    """True when one of `keys` signed `offer` (as sign_offer makes it)."""
    try:
        msg = offer_message(offer["oid"], offer["exp"], offer["ch"], offer["v"], offer["mh"])
        sig = base64.b64decode(offer["sig"], validate=True)
    except (KeyError, TypeError, ValueError):
        return False
    return signed_by(keys, msg, sig)


def check_offer(offer, bundle: UpdateBundle, keys: list[str], now: int) -> dict:
    """The signed offer `offer` (a dict from the release manager) when it is for `bundle`,
    not expired, well formed and signed by one of `keys`; UpdateError (422) otherwise."""
    if not isinstance(offer, dict):
        raise UpdateError(422, "offer: the signed offer of the bundle (`telegest fleet bundle "
                               "offer`); the fleet cannot sign one")
    fields = {"oid": int, "exp": int, "ch": str, "v": str, "mh": str, "sig": str}
    if set(offer) != set(fields) or any(type(offer[k]) is not t for k, t in fields.items()):
        raise UpdateError(422, "offer: exactly oid, exp (integers), ch, v, mh, sig (text)")
    try:
        check_channel(offer["ch"])
    except ValueError:
        raise UpdateError(422, "offer: channel of 1 to 16 of a-z 0-9 -") from None
    if offer["v"] != bundle.version or offer["mh"] != bundle.manifest_sha256:
        what = (f"version {offer['v']}" if offer["v"] != bundle.version
                else f"another build of {offer['v']} (its manifest digest differs)")
        raise UpdateError(422, f"offer: for {what}, not this bundle ({bundle.version})")
    if offer["exp"] <= now:
        raise UpdateError(422, "offer: expired; sign a new one")
    if not keys:
        raise UpdateError(422, "no trusted key: put the release key in firmware/trust.py "
                               "(or TELEGEST_UPDATE_KEYS)")
    if not verify_offer(keys, offer):
        raise UpdateError(422, "offer: bad signature (not signed by a key the firmware trusts, "
                               "or changed after signing)")
    return dict(offer)


def verify_manifest(keys: Iterable[str], manifest: bytes, signature: bytes) -> bool:
    return signed_by(keys, signed_message(manifest), signature)


def signed_by(keys: Iterable[str], msg: bytes, signature: bytes) -> bool:
    """True when one of `keys` (hex Ed25519 public keys) signed `msg`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    for k in keys:
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(k)).verify(signature, msg)
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def trusted_keys() -> list[str]:
    """The keys the firmware trusts (firmware/trust.py) plus TELEGEST_UPDATE_KEYS (hex, comma
    separated): a bundle signed by none of them is refused at upload."""
    from firmware.trust import KEYS
    extra = [k.strip() for k in os.environ.get("TELEGEST_UPDATE_KEYS", "").split(",")
             if k.strip()]
    return list(KEYS) + extra
