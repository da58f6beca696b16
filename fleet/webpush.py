"""Web Push: VAPID (RFC 8292) and the aes128gcm payload encryption (RFC 8291, RFC 8188),
written with `cryptography` alone, and the outbox's `webpush` channel.

A phone's subscription (its push service's endpoint, its P-256 key and auth secret) is stored
per device (`subscribe`). `notify_caregiver` queues one outbox row per subscription of the
caregiver's active phones, in the caller's transaction; the lease holder's dispatcher encrypts
and POSTs it (`WebPushSender`). A push is only a wake-up: everything it says, the phone also
gets at its next sync, so a phone that refused notifications loses nothing.

The fleet's VAPID key pair is made once, on first use, in the PEM file of
TELEGEST_VAPID_KEY_FILE (mode 0600 from its creation, fleet.private_files); its public half
(`public_key`) is what the app subscribes with.
"""
from __future__ import annotations

import base64
import json
import os
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import outbox
from fleet.config import Settings
from fleet.models import Device, PushSubscription
from fleet.private_files import write_private

KINDS = ("sos_ack", "planning", "message", "absence")
RECORD_SIZE = 4096
TTL_S = 24 * 3600
JWT_LIFE_S = 12 * 3600  # RFC 8292: at most 24 h
MAX_PAYLOAD = 3000  # a push service takes 4 KiB of ciphertext; the text is cut before that
SEND_TIMEOUT_S = 20


class SubscriptionProblem(ValueError):
    """A subscription the fleet cannot use (EN · FR)."""


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


# -- the fleet's VAPID key ----------------------------------------------------------------------

def private_key(path: str | Path) -> ec.EllipticCurvePrivateKey:
    """The VAPID key in `path`, made there (0600) the first time; two processes starting at
    once agree on one key (the file is created exclusively, the loser reads it)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            write_private(path, pem, exclusive=True)
            return key
        except FileExistsError:
            pass
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key (TELEGEST_VAPID_KEY_FILE)")
    return loaded


def public_key(settings: Settings) -> str:
    """The application server key the app subscribes with (base64url, uncompressed point)."""
    return b64u(_point(private_key(settings.vapid_key_file).public_key()))


def vapid_header(key: ec.EllipticCurvePrivateKey, endpoint: str, subject: str,
                 now: float | None = None) -> str:
    """`Authorization: vapid t=<ES256 JWT>, k=<public key>` for this endpoint (RFC 8292)."""
    u = urlsplit(endpoint)
    claims = {"aud": f"{u.scheme}://{u.netloc}", "exp": int((now or time.time()) + JWT_LIFE_S),
              "sub": subject}
    signing = (b64u(json.dumps({"typ": "JWT", "alg": "ES256"}).encode()) + "." +
               b64u(json.dumps(claims, separators=(",", ":")).encode()))
    r, s = decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
    jwt = signing + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"vapid t={jwt}, k={b64u(_point(key.public_key()))}"


# -- RFC 8291 -----------------------------------------------------------------------------------

def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def encrypt(plaintext: bytes, p256dh: str, auth: str, *, salt: bytes | None = None,
            server_key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    """The aes128gcm body for this subscription: header (salt, rs, the server's ephemeral
    public key) and one record (the text, then the last-record delimiter 0x02)."""
    ua_public = unb64u(p256dh)
    auth_secret = unb64u(auth)
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    server_key = server_key or ec.generate_private_key(ec.SECP256R1())
    as_public = _point(server_key.public_key())
    ecdh = server_key.exchange(ec.ECDH(), ua_key)
    ikm = _hkdf(auth_secret, ecdh, b"WebPush: info\x00" + ua_public + as_public, 32)
    salt = salt or os.urandom(16)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public
    return header + AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)


# -- subscriptions and notifications ------------------------------------------------------------

def check_endpoint(endpoint: str, allow_http: bool) -> str:
    u = urlsplit(endpoint)
    if u.scheme != "https" and not (allow_http and u.scheme == "http") or not u.netloc:
        raise SubscriptionProblem("the push endpoint must be an https URL · l'adresse de "
                                  "notification doit être en https")
    return endpoint


def subscribe(session: Session, device: Device, endpoint: str, p256dh: str, auth: str,
              allow_http: bool = False) -> PushSubscription:
    """Store (or move to this phone) the subscription of `endpoint`; the caller commits."""
    check_endpoint(endpoint, allow_http)
    try:
        if len(unb64u(p256dh)) != 65 or len(unb64u(auth)) != 16:
            raise ValueError
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(p256dh))
    except (ValueError, TypeError):
        raise SubscriptionProblem("keys.p256dh must be a P-256 point and keys.auth 16 bytes "
                                  "(base64url) · clés de notification invalides") from None
    sub = session.scalars(select(PushSubscription).where(
        PushSubscription.endpoint == endpoint)).first()
    if sub is None:
        sub = PushSubscription(endpoint=endpoint)
        session.add(sub)
    sub.device_id, sub.p256dh, sub.auth = device.id, p256dh, auth
    session.flush()
    return sub


def unsubscribe(session: Session, device: Device, endpoint: str) -> bool:
    sub = session.scalars(select(PushSubscription).where(
        PushSubscription.endpoint == endpoint, PushSubscription.device_id == device.id)).first()
    if sub is not None:
        session.delete(sub)
    return sub is not None


def notify_caregiver(session: Session, caregiver_id: int, kind: str, title: str, body: str,
                     url: str = "/app/", *, dedupe: str | None = None,
                     urgent: bool = False) -> int:
    """Queue a notification to every subscribed active phone of the caregiver, in the caller's
    transaction; returns how many rows were queued. `kind` is one of KINDS; `url` is what the
    notification opens; `dedupe` (e.g. "sos_ack:12") keeps a repeat from being queued twice."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    rows = session.execute(
        select(PushSubscription, Device.organisation_id)
        .join(Device, Device.id == PushSubscription.device_id)
        .where(Device.caregiver_id == caregiver_id, Device.kind == "phone",
               Device.status.in_(("provisioned", "active")))
        .order_by(PushSubscription.id)).all()
    for sub, org_id in rows:
        notify(session, sub, org_id, kind, title, body, url, dedupe=dedupe, urgent=urgent)
    return len(rows)


def notify_device(session: Session, device: Device, kind: str, title: str, body: str,
                  url: str = "/app/", *, dedupe: str | None = None) -> int:
    """The same as notify_caregiver, to one phone's subscriptions."""
    subs = list(session.scalars(select(PushSubscription).where(
        PushSubscription.device_id == device.id).order_by(PushSubscription.id)))
    for sub in subs:
        notify(session, sub, device.organisation_id, kind, title, body, url, dedupe=dedupe)
    return len(subs)


def notify(session: Session, sub: PushSubscription, organisation_id: int | None, kind: str,
           title: str, body: str, url: str, *, dedupe: str | None = None,
           urgent: bool = False) -> None:
    message = {"kind": kind, "title": title[:120], "body": body[:MAX_PAYLOAD // 2], "url": url}
    outbox.enqueue(session, channel="webpush", organisation_id=organisation_id,
                   recipient=f"device:{sub.device_id}", subject=title, body=body,
                   payload={"endpoint": sub.endpoint, "p256dh": sub.p256dh, "auth": sub.auth,
                            "urgency": "high" if urgent else "normal", "message": message},
                   dedupe_key=f"push:{dedupe}:{sub.id}" if dedupe else None)


class WebPushSender:
    """The outbox's `webpush` channel: encrypt, sign, POST. A 404 or 410 from the push service
    means the subscription is gone: a dead letter at once (and the subscription is dropped at
    the phone's next subscribe)."""

    def unavailable(self, settings: Settings) -> str | None:
        return None

    def send(self, letter: outbox.Letter, settings: Settings) -> None:
        p = letter.payload or {}
        try:
            body = encrypt(json.dumps(p["message"]).encode(), p["p256dh"], p["auth"])
            endpoint = check_endpoint(p["endpoint"], settings.webpush_allow_http)
        except (KeyError, ValueError) as e:
            raise outbox.SendError(f"unusable subscription: {e}", permanent=True) from None
        subject = (f"mailto:{settings.smtp_from}" if settings.smtp_from
                   else settings.public_url)
        request = urllib.request.Request(endpoint, data=body, method="POST", headers={
            "Authorization": vapid_header(private_key(settings.vapid_key_file), endpoint,
                                          subject),
            "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream",
            "TTL": str(TTL_S), "Urgency": p.get("urgency", "normal")})
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as r:
                r.read(1024)
        except urllib.error.HTTPError as e:
            permanent = e.code in (400, 403, 404, 410, 413)
            raise outbox.SendError(f"{e.code} {e.reason}", permanent=permanent) from None
        except (urllib.error.URLError, OSError) as e:
            raise outbox.SendError(f"{type(e).__name__}: {e}") from None


outbox.SENDERS["webpush"] = WebPushSender()
