"""A push service for tests: a real HTTP server in this process that plays the browser's push
service and the browser itself. It holds a subscription's private key and auth secret, checks
each request's VAPID header (RFC 8292: an ES256 JWT signed by the key in `k=`, its `aud` this
server's origin) and decrypts the aes128gcm body (RFC 8291) on its own, with `cryptography`:
nothing of fleet.webpush is used here, so the two implementations check each other."""
from __future__ import annotations

import base64
import json
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key) -> bytes:
    return key.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def decrypt(body: bytes, ua_key: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """RFC 8291 section 3.4 and RFC 8188: one record, padding stripped."""
    salt, rs, idlen = body[:16], *struct.unpack("!IB", body[16:21])
    as_public = body[21:21 + idlen]
    assert rs >= 18 and idlen == 65, (rs, idlen)
    ecdh = ua_key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), as_public))
    ikm = hkdf(auth_secret, ecdh, b"WebPush: info\x00" + _point(ua_key.public_key()) +
               as_public, 32)
    cek = hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    record = AESGCM(cek).decrypt(nonce, body[21 + idlen:], None).rstrip(b"\x00")
    assert record.endswith(b"\x02"), "the last record ends with the delimiter 2"
    return record[:-1]


def check_vapid(header: str, audience: str) -> str:
    """The base64url public key of a valid `vapid t=..., k=...` header; raises otherwise."""
    scheme, _, params = header.partition(" ")
    assert scheme == "vapid", header
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    signing, _, signature = fields["t"].rpartition(".")
    head, claims = (json.loads(unb64u(p)) for p in signing.split("."))
    assert head == {"typ": "JWT", "alg": "ES256"}, head
    assert claims["aud"] == audience, claims
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600, claims
    assert claims["sub"].startswith(("mailto:", "https:", "http:")), claims
    raw = unb64u(signature)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(fields["k"]))
    key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                    int.from_bytes(raw[32:], "big")),
               signing.encode(), ec.ECDSA(hashes.SHA256()))  # InvalidSignature if forged
    return fields["k"]


class PushService:
    """`start()`, then `subscription()` is what a browser's PushSubscription.toJSON() gives;
    `received` holds {"vapid_key", "message", "headers"} per accepted push."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = b"sixteen-byte-sec"
        self.received: list[dict] = []
        self.refused: list[str] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def origin(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def subscription(self, name: str = "phone") -> dict:
        return {"endpoint": f"{self.origin}/push/{name}",
                "keys": {"p256dh": b64u(_point(self.key.public_key())),
                         "auth": b64u(self.auth)}}

    def start(self) -> "PushService":
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    assert self.headers["Content-Encoding"] == "aes128gcm"
                    assert int(self.headers["TTL"]) > 0
                    key = check_vapid(self.headers["Authorization"], service.origin)
                    message = json.loads(decrypt(body, service.key, service.auth))
                except (AssertionError, InvalidSignature, ValueError, KeyError) as e:
                    service.refused.append(f"{type(e).__name__}: {e}")
                    self.send_response(400)
                    self.end_headers()
                    return
                service.received.append({"vapid_key": key, "message": message,
                                         "path": self.path, "headers": dict(self.headers)})
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
