"""Test helpers: a fixed signing key, bundles, offers, and a fleet that answers chunk requests."""
from __future__ import annotations

import base64
import hashlib
import json
import time

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.ota import offer_message
from fleet.update_signing import load_private_key, sign_manifest, sign_offer
from fleet.updates import Bundle, build_bundle

SEED = bytes(range(32))  # a test key, trusted only by the tests
KEY = Ed25519PrivateKey.from_private_bytes(SEED)
PEM = KEY.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
PUB = KEY.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
OTHER_PEM = Ed25519PrivateKey.from_private_bytes(bytes(32)).private_bytes(
    ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())


def files_for(version: str, n: int = 3, size: int = 1500) -> dict[str, bytes]:
    out = {"firmware/__init__.py": f'VERSION = "{version}"\n'.encode()}
    for i in range(1, n):
        body = (f"# module {i} of {version}\n" * (size // 24 + 1))[:size]
        out[f"firmware/m{i}.py"] = body.encode()
    return out


def signed(version: str, files: dict[str, bytes] | None = None, pem: bytes = PEM) -> Bundle:
    b = build_bundle(version, files or files_for(version))
    b.signature = sign_manifest(pem, b.manifest)
    return b


def offer(bundle: Bundle, id: int = 1, b: int = 1, exp: int = 2_000_000_000,
          ch: str = "stable", oid: int = 7, pem: bytes = PEM, v: str | None = None) -> dict:
    """The down/cmd update command the fleet sends: the offer signed with `pem` (its id,
    expiry, channel, version `v` (the bundle's by default), manifest digest) and the bundle's
    manifest signature."""
    v = v or bundle.version
    mh = hashlib.sha256(bundle.manifest).hexdigest()
    osig = load_private_key(pem).sign(offer_message(oid, exp, ch, v, mh))
    return {"id": id, "cmd": "update", "exp": exp, "v": v, "b": b, "mh": mh,
            "ms": len(bundle.manifest), "sig": base64.b64encode(bundle.signature).decode(),
            "oid": oid, "ch": ch, "osig": base64.b64encode(osig).decode()}


def signed_offer(bundle: Bundle, ch: str = "stable", ttl_s: int = 86400, pem: bytes = PEM,
                 oid: int | None = None) -> dict:
    """The offer the release manager signs for a rollout (`telegest fleet bundle offer`)."""
    return sign_offer(pem, bundle, ch, int(time.time()) + ttl_s, oid)


def wire_files(bundle: Bundle) -> list[bytes]:
    """What the fleet serves: index 0 the manifest, then the files in manifest order."""
    return [bundle.manifest] + [bundle.files[f["name"]] for f in bundle.doc["files"]]


def serve(updater, files: list[bytes], now_ms: int = 0, limit: int = 100000,
          chunk: int = 640) -> list[dict]:
    """Answer the updater's chunk requests until it stops asking; returns its reports."""
    reports = []
    for _ in range(limit):
        out = updater.outgoing(now_ms)
        gets = [json.loads(p) for k, p in out if k == "get"]
        reports += [json.loads(p) for k, p in out if k == "report"]
        if not gets:
            return reports
        for g in gets:
            data = files[g["f"]][g["o"]:g["o"] + chunk]
            updater.on_chunk(json.dumps({"b": g["b"], "f": g["f"], "o": g["o"],
                                         "d": base64.b64encode(data).decode()}).encode())
    raise AssertionError("the updater kept asking")
