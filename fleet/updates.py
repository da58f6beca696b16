"""Firmware update bundles and their rollouts (docs/updates.md).

A **bundle** is a tar file: `manifest.json` (the canonical manifest, below), `manifest.sig`
(base64 Ed25519 signature, added by `sign_bundle`) and `files/<name>` for each file. The
canonical manifest is the JSON (keys sorted, no spaces, ASCII) of
    {"files": [{"name", "sha256", "size"}, ... sorted by name], "format": 1,
     "product": "telegest-reader", "v": "0.2.0"}
whose sha256 the release key signs (fleet/update_signing.py, with the signed offers).

A **rollout** offers one bundle to a set of devices in waves (cumulative percents, e.g. 10 %,
50 %, 100 %), with the offer the release manager signed offline (its id, expiry, channel,
version and manifest digest), unchanged: the fleet cannot make or change one, only replay it,
and the device refuses it once expired, on another channel, or older than its minimum version.
The next wave is offered when every device of the current one has succeeded or failed; the
rollout pauses when `max_failures` devices failed since it started or was last
resumed (hawkBit's error threshold), so the waves after it are not offered.

`UpdateService` is what the worker runs: it answers the devices' chunk requests (up/ota ->
down/ota) from bundles cached in memory, records their reports, and drives the rollouts.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
import re
import tarfile
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import (Device, DeviceCommand, Rollout, RolloutTarget, UpdateBundle,
                          UpdateBundleFile)
from fleet.types import utcnow
from fleet.update_signing import (UpdateError, check_offer, sign_manifest, trusted_keys,
                                  verify_manifest)
from firmware.ota import CHUNK, MAX_FILES, MAX_MANIFEST, MAX_TOTAL, PRODUCT

log = logging.getLogger("telegest.updates")

_NAME = re.compile(r"^[A-Za-z0-9_\-.][A-Za-z0-9_\-./]{0,63}$")
_VERSION = re.compile(r"^\d{1,6}(\.\d{1,6}){0,3}$")
_LEFT_OUT = {"main.py", "boot.py", "manifest.py"}  # the loader stays on the filesystem
TERMINAL = ("ok", "failed", "cancelled")
OTA_UP = "tg/v1/+/up/ota"
REOFFER_S = 30  # an offer not answered is published again (the device was offline)


# -- the manifest ----------------------------------------------------------------------------------
def canonical_manifest(version: str, files: dict[str, bytes]) -> bytes:
    if not _VERSION.match(version):
        raise UpdateError(422, f"version {version!r}: dotted integers, e.g. 0.2.0")
    if not 1 <= len(files) <= MAX_FILES:
        raise UpdateError(422, f"a bundle has 1 to {MAX_FILES} files")
    for name in files:
        if not _NAME.match(name) or ".." in name or "//" in name or name.endswith("/"):
            raise UpdateError(422, f"file name {name!r}: up to 64 of A-Z a-z 0-9 _ - . /")
    if sum(len(b) for b in files.values()) > MAX_TOTAL:
        raise UpdateError(422, f"a bundle holds at most {MAX_TOTAL} bytes of files")
    doc = {"files": [{"name": n, "sha256": hashlib.sha256(files[n]).hexdigest(),
                      "size": len(files[n])} for n in sorted(files)],
           "format": 1, "product": PRODUCT, "v": version}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    if len(text) > MAX_MANIFEST:
        raise UpdateError(422, f"manifest over {MAX_MANIFEST} bytes: fewer files")
    return text


# -- the bundle file ------------------------------------------------------------------------------
@dataclass
class Bundle:
    manifest: bytes
    files: dict[str, bytes]
    signature: bytes | None = None

    @property
    def doc(self) -> dict:
        return json.loads(self.manifest)

    @property
    def version(self) -> str:
        return self.doc["v"]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.manifest).hexdigest()


def collect_files(source: str | Path, prefix: str = "firmware") -> dict[str, bytes]:
    """The package under `source` as bundle files named `<prefix>/<path>` (.py and .mpy;
    main.py, boot.py and manifest.py at its top are left out: they stay on the filesystem)."""
    root = Path(source)
    if not root.is_dir():
        raise UpdateError(422, f"{root}: not a directory")
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if (path.is_file() and path.suffix in (".py", ".mpy") and rel not in _LEFT_OUT
                and "__pycache__" not in path.parts):
            out[f"{prefix}/{rel}" if prefix else rel] = path.read_bytes()
    return out


def build_bundle(version: str, files: dict[str, bytes]) -> Bundle:
    return Bundle(canonical_manifest(version, files), dict(files))


def write_bundle(bundle: Bundle) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
        add("manifest.json", bundle.manifest)
        if bundle.signature is not None:
            add("manifest.sig", base64.b64encode(bundle.signature) + b"\n")
        for name in sorted(bundle.files):
            add("files/" + name, bundle.files[name])
    return buf.getvalue()


def read_bundle(data: bytes) -> Bundle:
    """Parse a bundle file and check its files against its manifest (not the signature)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError) as e:
        raise UpdateError(422, f"not a bundle file: {e}") from None
    manifest = members.get("manifest.json")
    if manifest is None:
        raise UpdateError(422, "not a bundle file: no manifest.json")
    sig = members.get("manifest.sig")
    files = {n[6:]: b for n, b in members.items() if n.startswith("files/")}
    try:
        doc = json.loads(manifest)
        version = doc["v"]
    except (ValueError, KeyError, TypeError):
        raise UpdateError(422, "manifest.json is not a manifest") from None
    if canonical_manifest(version, files) != manifest:
        raise UpdateError(422, "the files do not match manifest.json (changed after "
                               "`bundle create`?)")
    signature = None
    if sig is not None:
        try:
            signature = base64.b64decode(sig.strip(), validate=True)
        except ValueError:
            raise UpdateError(422, "manifest.sig is not base64") from None
        if len(signature) != 64:
            raise UpdateError(422, "manifest.sig is not an Ed25519 signature (64 bytes)")
    return Bundle(manifest, files, signature)


def sign_bundle(data: bytes, private_pem: bytes, passphrase: bytes | None = None) -> bytes:
    bundle = read_bundle(data)
    bundle.signature = sign_manifest(private_pem, bundle.manifest, passphrase)
    return write_bundle(bundle)


# -- waves and the threshold ----------------------------------------------------------------------
def plan_waves(n: int, percents: list[int]) -> list[int]:
    """Sizes of the waves for `n` devices and cumulative `percents` ending at 100, e.g.
    plan_waves(10, [10, 50, 100]) == [1, 4, 5]. Every percent gets at least one device while
    there are any left; empty waves are dropped."""
    if not percents or percents[-1] != 100 or any(
            not 0 < p <= 100 for p in percents) or percents != sorted(set(percents)):
        raise UpdateError(422, "waves: increasing percents from 1 to 100, ending at 100")
    sizes, done = [], 0
    for p in percents:
        upto = min(n, max(math.ceil(n * p / 100), done + 1))
        if upto > done:
            sizes.append(upto - done)
            done = upto
    return sizes


def next_step(wave: int, waves: list[Counter], failed_since_resume: int,
              max_failures: int) -> tuple[str, int]:
    """What a running rollout does now: ("pause", wave) when the failures reached the
    threshold, ("wait", wave) while the current wave has devices not done, ("offer", k) to
    offer wave k, ("done", wave) after the last one. `waves[k]` counts target states."""
    if failed_since_resume >= max_failures:
        return "pause", wave
    if wave >= 0 and sum(c for s, c in waves[wave].items() if s not in TERMINAL):
        return "wait", wave
    if wave + 1 < len(waves):
        return "offer", wave + 1
    return "done", wave


# -- data functions (API and CLI) -----------------------------------------------------------------
def store_bundle(session: Session, data: bytes, who: str, *, check_signature: bool = True,
                 keys: list[str] | None = None) -> UpdateBundle:
    """Store a signed bundle file. The signature is checked against the trusted keys unless
    `check_signature` is False (tests of the device's own check)."""
    bundle = read_bundle(data)
    if bundle.signature is None:
        raise UpdateError(422, "the bundle is not signed: `telegest fleet bundle sign` first")
    if check_signature:
        keys = trusted_keys() if keys is None else keys
        if not keys:
            raise UpdateError(422, "no trusted key: put the release key in firmware/trust.py "
                                   "(or TELEGEST_UPDATE_KEYS)")
        if not verify_manifest(keys, bundle.manifest, bundle.signature):
            raise UpdateError(422, "bad signature: not signed by a key the firmware trusts")
    if session.scalar(select(UpdateBundle.id).where(
            UpdateBundle.version == bundle.version)) is not None:
        raise UpdateError(409, f"a bundle of version {bundle.version} exists already")
    doc = bundle.doc
    row = UpdateBundle(product=PRODUCT, version=bundle.version,
                       manifest=bundle.manifest.decode("ascii"), manifest_sha256=bundle.sha256,
                       signature=base64.b64encode(bundle.signature).decode(),
                       size=sum(f["size"] for f in doc["files"]),
                       file_count=len(doc["files"]), created_by=who[:200])
    session.add(row)
    session.flush()
    for i, f in enumerate(doc["files"], 1):
        session.add(UpdateBundleFile(bundle_id=row.id, idx=i, name=f["name"], size=f["size"],
                                     sha256=f["sha256"], content=bundle.files[f["name"]]))
    audit.record(session, who, "bundle_upload", f"bundle:{row.id}",
                 detail={"version": row.version, "sha256": row.manifest_sha256,
                         "files": row.file_count, "checked": check_signature})
    return row


def select_devices(session: Session, devices: list[str] | None,
                   filt: dict | None) -> list[Device]:
    """The rollout's devices: the idents listed, or those matching the filter
    ({"kind", "fw", "prefix", "organisation_id"}); readers only, never blocked or retired."""
    stmt = select(Device).where(Device.kind == "reader",
                                Device.status.in_(("registered", "provisioned", "active")))
    if devices is not None:
        found = list(session.scalars(stmt.where(Device.ident.in_(devices))))
        missing = sorted(set(devices) - {d.ident for d in found})
        if missing:
            raise UpdateError(422, f"not updatable readers: {', '.join(missing[:10])}")
        return sorted(found, key=lambda d: devices.index(d.ident))
    filt = filt or {}
    unknown = set(filt) - {"fw", "prefix", "organisation_id"}
    if unknown:
        raise UpdateError(422, f"unknown filter keys: {', '.join(sorted(unknown))}")
    if "fw" in filt:
        stmt = stmt.where(Device.fw_version == filt["fw"])
    if "prefix" in filt:
        stmt = stmt.where(Device.ident.startswith(filt["prefix"], autoescape=True))
    if "organisation_id" in filt:
        stmt = stmt.where(Device.organisation_id == filt["organisation_id"])
    return list(session.scalars(stmt.order_by(Device.ident)))


def start_rollout(session: Session, bundle_id: int, who: str, *,
                  devices: list[str] | None = None, filt: dict | None = None,
                  waves: list[int] | None = None, max_failures: int = 1,
                  offer_ttl_s: int = 3600, offer: dict | None = None,
                  keys: list[str] | None = None) -> Rollout:
    """`offer`: the bundle's offer signed offline (sign_offer), checked against `keys` (the
    trusted keys by default) and sent to every device as it is."""
    bundle = session.get(UpdateBundle, bundle_id)
    if bundle is None:
        raise UpdateError(404, f"bundle {bundle_id} not found")
    offer = check_offer(offer, bundle, trusted_keys() if keys is None else keys,
                        int(utcnow().timestamp()))
    if max_failures < 1:
        raise UpdateError(422, "max_failures: at least 1")
    if (devices is None) == (filt is None):
        raise UpdateError(422, "give either devices (a list of idents) or a filter")
    waves = waves or [10, 50, 100]
    targets = select_devices(session, devices, filt)
    if not targets:
        raise UpdateError(422, "no device to update")
    busy = session.scalars(select(Device.ident).join(
        RolloutTarget, RolloutTarget.device_id == Device.id).join(
        Rollout, Rollout.id == RolloutTarget.rollout_id).where(
        Rollout.state.in_(("running", "paused")), Device.id.in_([d.id for d in targets]),
        RolloutTarget.state.notin_(TERMINAL))).all()
    if busy:
        raise UpdateError(409, f"in another rollout: {', '.join(sorted(busy)[:10])}")
    sizes = plan_waves(len(targets), waves)
    rollout = Rollout(bundle_id=bundle.id, waves=waves, max_failures=max_failures,
                      offer_ttl_s=offer_ttl_s, offer=offer,
                      target_filter={"devices": devices} if devices is not None else filt,
                      created_by=who[:200])
    session.add(rollout)
    session.flush()
    i = 0
    for w, size in enumerate(sizes):
        for d in targets[i:i + size]:
            session.add(RolloutTarget(rollout_id=rollout.id, device_id=d.id, wave=w))
        i += size
    audit.record(session, who, "rollout_start", f"rollout:{rollout.id}",
                 detail={"bundle": bundle.version, "devices": len(targets), "waves": sizes,
                         "max_failures": max_failures, "offer": offer["oid"],
                         "channel": offer["ch"], "offer_exp": offer["exp"]})
    return rollout


def set_rollout_state(session: Session, rollout_id: int, action: str, who: str,
                      why: str | None = None) -> Rollout:
    """pause, resume or cancel."""
    r = session.get(Rollout, rollout_id)
    if r is None:
        raise UpdateError(404, f"rollout {rollout_id} not found")
    allowed = {"pause": ("running",), "resume": ("paused",), "cancel": ("running", "paused")}
    if r.state not in allowed[action]:
        raise UpdateError(409, f"rollout {r.id} is {r.state}: cannot {action}")
    if action == "pause":
        r.state, r.reason = "paused", why or "paused by hand"
    elif action == "resume":
        r.state, r.reason = "running", None
        r.failures_at_resume = _failures(session, r.id)  # count anew from here
    else:
        r.state, r.reason = "cancelled", why or "cancelled by hand"
        for t in session.scalars(select(RolloutTarget).where(
                RolloutTarget.rollout_id == r.id, RolloutTarget.state == "waiting")):
            t.state = "cancelled"
    r.updated_at = utcnow()
    audit.record(session, who, f"rollout_{action}", f"rollout:{r.id}", why=why)
    return r


def _failures(session: Session, rollout_id: int) -> int:
    return session.scalar(select(func.count()).where(
        RolloutTarget.rollout_id == rollout_id, RolloutTarget.state == "failed")) or 0


def rollout_status(session: Session, rollout_id: int) -> dict:
    r = session.get(Rollout, rollout_id)
    if r is None:
        raise UpdateError(404, f"rollout {rollout_id} not found")
    bundle = session.get(UpdateBundle, r.bundle_id)
    rows = session.execute(select(RolloutTarget, Device.ident).join(
        Device, Device.id == RolloutTarget.device_id).where(
        RolloutTarget.rollout_id == r.id).order_by(RolloutTarget.wave, Device.ident)).all()
    waves: list[Counter] = [Counter() for _ in range(max((t.wave for t, _ in rows), default=-1)
                                                     + 1)]
    for t, _ in rows:
        waves[t.wave][t.state] += 1
    return {"id": r.id, "bundle_id": r.bundle_id, "version": bundle.version, "state": r.state,
            "reason": r.reason, "wave": r.wave, "waves": r.waves,
            "max_failures": r.max_failures, "failures": _failures(session, r.id),
            "created_at": r.created_at, "created_by": r.created_by,
            "offer": ({k: r.offer[k] for k in ("oid", "ch", "exp")} if r.offer else None),
            "wave_counts": [dict(w) for w in waves],
            "targets": [{"device": ident, "wave": t.wave, "state": t.state,
                         "progress": t.progress, "why": t.why, "command_id": t.command_id}
                        for t, ident in rows]}


# -- the worker's side ----------------------------------------------------------------------------
Publish = Callable[[str, bytes], None]


class UpdateService:
    """Chunks, reports and rollouts. `handle(topic, payload)` is called for each up/ota
    message (from any thread: it only enqueues); `poll()` drives the rollouts and is called
    about every second by the worker's update thread, which also drains the queue."""

    def __init__(self, sessions, publish: Publish, *, reoffer_s: float = REOFFER_S,
                 cache_bundles: int = 4) -> None:
        self.sessions = sessions
        self.publish = publish
        self.reoffer_s = reoffer_s
        self.counts: Counter = Counter()
        self._cache: OrderedDict[int, list[bytes]] = OrderedDict()
        self._cache_max = cache_bundles
        self._allowed: dict[int, set[str]] = {}  # bundle -> idents offered it
        self._pending: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def handle(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._pending.append((topic, payload))
        self._wake.set()

    def drain(self) -> int:
        with self._lock:
            todo, self._pending = self._pending, []
        reports = []
        for topic, payload in todo:
            parts = topic.split("/")
            try:
                msg = json.loads(payload)
                if len(parts) != 5 or not isinstance(msg, dict):
                    raise ValueError
            except ValueError:
                self.counts["ota_bad"] += 1
                continue
            if "f" in msg:
                self._serve(parts[2], msg)
            else:
                reports.append((parts[2], msg))
        if reports:
            self._record(reports)
        return len(todo)

    # chunks
    def _files(self, bundle_id: int) -> list[bytes] | None:
        files = self._cache.get(bundle_id)
        if files is not None:
            self._cache.move_to_end(bundle_id)
            return files
        with self.sessions() as session:
            b = session.get(UpdateBundle, bundle_id)
            if b is None:
                return None
            rows = session.scalars(select(UpdateBundleFile).where(
                UpdateBundleFile.bundle_id == bundle_id).order_by(UpdateBundleFile.idx)).all()
            files = [b.manifest.encode("ascii")] + [r.content for r in rows]
        self._cache[bundle_id] = files
        while len(self._cache) > self._cache_max:
            self._cache.popitem(last=False)
        return files

    def _serve(self, ident: str, msg: dict) -> None:
        try:
            b, f, o = int(msg["b"]), int(msg["f"]), int(msg["o"])
        except (KeyError, TypeError, ValueError):
            self.counts["ota_bad"] += 1
            return
        if ident not in self._allowed.get(b, ()):
            self._refresh_allowed(b)
            if ident not in self._allowed.get(b, ()):
                self.counts["ota_not_offered"] += 1
                return
        files = self._files(b)
        if files is None or not 0 <= f < len(files) or not 0 <= o < len(files[f]):
            self.counts["ota_bad"] += 1
            return
        data = base64.b64encode(files[f][o:o + CHUNK]).decode()
        payload = ('{"b":%d,"f":%d,"o":%d,"d":"%s"}' % (b, f, o, data)).encode()
        self.publish(f"tg/v1/{ident}/down/ota", payload)
        self.counts["ota_chunks"] += 1

    def _refresh_allowed(self, bundle_id: int) -> None:
        with self.sessions() as session:
            self._allowed[bundle_id] = set(session.scalars(select(Device.ident).join(
                RolloutTarget, RolloutTarget.device_id == Device.id).join(
                Rollout, Rollout.id == RolloutTarget.rollout_id).where(
                Rollout.bundle_id == bundle_id,
                RolloutTarget.state.in_(("offered", "downloading", "installed")))))

    # reports
    def _record(self, reports: list[tuple[str, dict]]) -> None:
        with self.sessions() as session:
            for ident, msg in reports:
                cid, st = msg.get("id"), msg.get("st")
                if not isinstance(cid, int) or st not in ("downloading", "installed", "ok",
                                                          "failed"):
                    self.counts["ota_bad"] += 1
                    continue
                row = session.execute(select(RolloutTarget, DeviceCommand).join(
                    DeviceCommand, DeviceCommand.id == RolloutTarget.command_id).join(
                    Device, Device.id == RolloutTarget.device_id).where(
                    RolloutTarget.command_id == cid, Device.ident == ident)).first()
                if row is None:
                    self.counts["ota_unknown_report"] += 1
                    continue
                target, cmd = row
                self.counts[f"ota_{st}"] += 1
                if target.state in TERMINAL:
                    continue  # a device reports its outcome on every connect
                target.updated_at = utcnow()
                if st == "downloading":
                    target.state = "downloading"
                    target.progress = max(target.progress, int(msg.get("p") or 0))
                elif st == "installed":
                    target.state, target.progress = "installed", 100
                elif st == "ok":
                    target.state = "ok"
                    cmd.state, cmd.done_at, cmd.result = "done", utcnow(), "ok"
                else:
                    why = str(msg.get("why") or "failed")[:64]
                    target.state, target.why = "failed", why
                    cmd.state, cmd.done_at, cmd.result = "failed", utcnow(), why
                    log.warning("update of %s to %s failed: %s", ident, msg.get("v"), why)
            session.commit()

    # rollouts
    def poll(self) -> None:
        with self.sessions() as session:
            for r in session.scalars(select(Rollout).where(Rollout.state == "running")).all():
                self._drive(session, r)
                session.commit()

    def _drive(self, session: Session, r: Rollout) -> None:
        now = utcnow()
        targets = session.scalars(select(RolloutTarget).where(
            RolloutTarget.rollout_id == r.id)).all()
        for t in targets:  # offers past their time
            if t.state not in TERMINAL and t.state != "waiting" and t.offered_at is not None \
                    and now - t.offered_at > timedelta(seconds=r.offer_ttl_s):
                t.state, t.why, t.updated_at = "failed", "timeout", now
                cmd = session.get(DeviceCommand, t.command_id)
                if cmd is not None:
                    cmd.state, cmd.result = "expired", "timeout"
        waves: list[Counter] = [Counter() for _ in range(max(t.wave for t in targets) + 1)]
        for t in targets:
            waves[t.wave][t.state] += 1
        failed = sum(w["failed"] for w in waves)
        step, k = next_step(r.wave, waves, failed - r.failures_at_resume, r.max_failures)
        if step == "pause":
            r.state = "paused"
            r.reason = (f"{failed - r.failures_at_resume} failed device(s) reached the "
                        f"threshold of {r.max_failures}")
            r.updated_at = now
            audit.record(session, "fleet", "rollout_pause", f"rollout:{r.id}", why=r.reason)
            log.warning("rollout %d paused: %s", r.id, r.reason)
        elif step == "offer":
            r.wave, r.updated_at = k, now
            for t in targets:
                if t.wave == k and t.state == "waiting":
                    self._offer(session, r, t, now)
        elif step == "done":
            r.state, r.updated_at = "done", now
            audit.record(session, "fleet", "rollout_done", f"rollout:{r.id}",
                         detail={"failed": failed})
        else:  # wait: offer again to devices that have not answered (offline at the time)
            for t in targets:
                if t.state == "offered" and t.updated_at is not None and \
                        (now - t.updated_at).total_seconds() >= self.reoffer_s:
                    self._publish_offer(session, t, now)

    def _offer(self, session: Session, r: Rollout, t: RolloutTarget, now) -> None:
        bundle = session.get(UpdateBundle, r.bundle_id)
        exp = now + timedelta(seconds=r.offer_ttl_s)
        signed = r.offer or {}
        if signed:  # the device checks the signed expiry: the command cannot outlive it
            exp = min(exp, datetime.fromtimestamp(signed["exp"], timezone.utc))
        cmd = DeviceCommand(device_id=t.device_id, kind="update", expires_at=exp,
                            created_by=f"rollout:{r.id}", state="sent", sent_at=now)
        session.add(cmd)
        session.flush()
        # "sig", the bundle's manifest signature, is what firmware older than signed offers
        # checks; "oid", "ch" and "osig" (and "exp", signed) are what this firmware checks
        cmd.payload = {"id": cmd.id, "cmd": "update",
                       "exp": signed.get("exp", int(exp.timestamp())),
                       "v": bundle.version, "b": bundle.id, "mh": bundle.manifest_sha256,
                       "ms": len(bundle.manifest), "sig": bundle.signature}
        if signed:
            cmd.payload.update(oid=signed["oid"], ch=signed["ch"], osig=signed["sig"])
        t.command_id, t.state, t.offered_at = cmd.id, "offered", now
        self._allowed.setdefault(bundle.id, set()).add(
            session.get(Device, t.device_id).ident)
        self._publish_offer(session, t, now)

    def _publish_offer(self, session: Session, t: RolloutTarget, now) -> None:
        cmd = session.get(DeviceCommand, t.command_id)
        ident = session.get(Device, t.device_id).ident
        p = cmd.payload
        payload = ('{"id":%d,"cmd":"update","exp":%d,"v":"%s","b":%d,"mh":"%s","ms":%d,'
                   '"sig":"%s"' % (p["id"], p["exp"], p["v"], p["b"], p["mh"], p["ms"],
                                   p["sig"]))
        if "osig" in p:
            payload += ',"oid":%d,"ch":"%s","osig":"%s"' % (p["oid"], p["ch"], p["osig"])
        payload = (payload + "}").encode()
        self.publish(f"tg/v1/{ident}/down/cmd", payload)
        t.updated_at = now
        self.counts["ota_offers"] += 1

    def run(self, stop: threading.Event, every_s: float = 1.0,
            drive: bool | Callable[[], bool] = True) -> None:
        """The worker's update thread: reports and chunks as they come, rollouts each second
        while `drive` is (or returns) true: only the worker holding the fleet-duties lease
        drives them."""
        last = 0.0
        while not stop.is_set():
            self._wake.clear()
            try:
                self.drain()
                if (drive() if callable(drive) else drive) and \
                        time.monotonic() - last >= every_s:
                    self.poll()
                    last = time.monotonic()
            except Exception:
                self.counts["errors"] += 1
                log.exception("update service step failed")
            self._wake.wait(0.2)
            self._wake.clear()
