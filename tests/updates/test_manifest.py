"""The bundle's canonical manifest and signature (exact bytes), the bundle file, the wave
planner and the threshold logic."""
from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from firmware.ota import verify_offer
from fleet.update_signing import signed_message, verify_manifest
from fleet.updates import (UpdateError, canonical_manifest, next_step, plan_waves, read_bundle,
                           sign_bundle, write_bundle)
from tests.updates.bundles import OTHER_PEM, PEM, PUB, signed

MANIFEST = (b'{"files":[{"name":"firmware/a.py","sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4'
            b'649b934ca495991b7852b855","size":0},{"name":"firmware/b.py","sha256":"0111afd387e1ad5'
            b'76083c5039aa542faa2ed4a53d3e128bd03de990f9ea4255f","size":9}],"format":1,'
            b'"product":"telegest-reader","v":"0.2.0"}')
SIGNATURE = bytes.fromhex(
    "55274c1bafa5bc6deee106516e3df70f3a62ce582967aed4f96934f704993188"
    "eedea45a2dda05f2b596dffbc971fab935a6aec12d00726ddbb4d430fc7bc205")


def test_canonical_manifest_exact_bytes():
    m = canonical_manifest("0.2.0", {"firmware/b.py": b"print(2)\n", "firmware/a.py": b""})
    assert m == MANIFEST


def test_signature_exact_bytes_over_the_prefix_and_the_manifest_digest():
    msg = signed_message(MANIFEST)
    assert msg == b"telegest bundle v1\n" + hashlib.sha256(MANIFEST).digest()
    from tests.updates.bundles import KEY
    assert KEY.sign(msg) == SIGNATURE  # Ed25519 is deterministic
    assert verify_manifest([PUB], MANIFEST, SIGNATURE)
    # the device's own pure-Python check agrees, and refuses a changed bit
    mh = hashlib.sha256(MANIFEST).hexdigest()
    assert verify_offer([PUB], mh, SIGNATURE)
    bad = bytearray(SIGNATURE)
    bad[40] ^= 1
    assert not verify_offer([PUB], mh, bytes(bad))
    assert not verify_offer([PUB], hashlib.sha256(MANIFEST + b" ").hexdigest(), SIGNATURE)
    assert not verify_manifest([PUB], MANIFEST + b" ", SIGNATURE)


@pytest.mark.parametrize("version,files,why", [
    ("0.2", {"../x.py": b""}, "file name"),
    ("0.2", {"/x.py": b""}, "file name"),
    ("v2", {"x.py": b""}, "version"),
    ("0.2", {}, "1 to"),
])
def test_bad_manifests_are_refused(version, files, why):
    with pytest.raises(UpdateError, match=why):
        canonical_manifest(version, files)


def test_bundle_file_round_trip_sign_and_tamper():
    b = signed("0.3.0")
    b.signature = None
    data = sign_bundle(write_bundle(b), PEM)
    back = read_bundle(data)
    assert back.manifest == b.manifest and back.files == b.files
    assert verify_manifest([PUB], back.manifest, back.signature)
    other = read_bundle(sign_bundle(data, OTHER_PEM))
    assert not verify_manifest([PUB], other.manifest, other.signature)
    back.files["firmware/m1.py"] += b"# changed after signing\n"
    with pytest.raises(UpdateError, match="do not match"):
        read_bundle(write_bundle(back))


@pytest.mark.parametrize("n,percents,sizes", [
    (10, [10, 50, 100], [1, 4, 5]),
    (100, [10, 50, 100], [10, 40, 50]),
    (3, [10, 50, 100], [1, 1, 1]),
    (1, [10, 50, 100], [1]),
    (7, [100], [7]),
    (0, [10, 100], []),
])
def test_wave_planner(n, percents, sizes):
    assert plan_waves(n, percents) == sizes
    assert sum(sizes) == n


@pytest.mark.parametrize("percents", [[], [50], [50, 10, 100], [0, 100], [10, 10, 100]])
def test_wave_planner_refuses_bad_percents(percents):
    with pytest.raises(UpdateError):
        plan_waves(10, percents)


def waves(*states: str) -> list[Counter]:
    return [Counter(s.split()) for s in states]


@pytest.mark.parametrize("wave,ws,failed,limit,expect", [
    (-1, waves("waiting", "waiting waiting"), 0, 1, ("offer", 0)),
    (0, waves("offered", "waiting"), 0, 1, ("wait", 0)),
    (0, waves("downloading", "waiting"), 0, 1, ("wait", 0)),
    (0, waves("ok", "waiting"), 0, 1, ("offer", 1)),
    (1, waves("ok", "ok failed offered"), 1, 1, ("pause", 1)),
    (1, waves("ok", "ok failed offered"), 1, 2, ("wait", 1)),
    (1, waves("ok", "ok failed ok"), 1, 2, ("done", 1)),
    (0, waves("failed", "waiting"), 0, 1, ("offer", 1)),  # resumed: counted anew
])
def test_threshold_and_waves(wave, ws, failed, limit, expect):
    assert next_step(wave, ws, failed, limit) == expect


def test_offer_message_exact_bytes():
    """What the release key signs for an offer (docs/updates.md): the device rebuilds these
    exact bytes from the offer's fields, so the fleet and the firmware must agree."""
    from firmware.ota import offer_message
    mh = "ab" * 32
    assert offer_message(7, 1798003600, "stable", "0.2.0", mh) == (
        b'telegest offer v2\n{"ch":"stable","exp":1798003600,"mh":"' + mh.encode()
        + b'","oid":7,"v":"0.2.0"}')
    doc = {"oid": 7, "exp": 1798003600, "ch": "stable", "v": "0.2.0", "mh": mh}
    assert offer_message(**doc)[len(b"telegest offer v2\n"):] == json.dumps(
        doc, sort_keys=True, separators=(",", ":")).encode()  # canonical JSON
