"""The device lifecycle: registered → provisioned → active → blocked → wiped or retired.

Data functions shared by the API and the CLI. Each one checks the transition and the actor's
role, acts on the broker first (a refused broker command changes nothing in the database),
then writes the device, its commands and the audit log; the caller commits. See
docs/operations.md for the order of things and why blocking is immediate.

A reader is provisioned in two phases by a technician's `telegest device provision`: `stage`
gives new credentials the broker holds disabled (the old ones stay the active ones), `confirm`
switches to them only when the box answers the digest of what it stored (`broker_proof`);
`abandon`, a refused confirm, or the stage's expiry leave the old credentials as they were.
`provision` (the console's button, `telegest fleet device provision`, unblock, a phone's
enrolment) still rotates at once.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet import audit
from fleet.brokerauth import BrokerAuthError, BrokerControl, new_password, other_slot
from fleet.models import Caregiver, Client, Device, DeviceCommand, EnrolmentToken
from fleet.types import utcnow

ENROLMENT_TTL = timedelta(minutes=15)
STAGE_TTL = timedelta(minutes=15)  # a technician's write, read-back and confirm take seconds
WIPE_TTL = timedelta(days=30)
TOKEN_PREFIX = "tge_"
IDENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # the broker username and topic segment

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "provision": (("registered", "provisioned", "active", "blocked", "wiped"), "provisioned"),
    "enrol": (("registered", "provisioned", "active", "blocked", "wiped"), "provisioned"),
    "activate": (("provisioned",), "active"),
    "block": (("provisioned", "active"), "blocked"),
    "unblock": (("blocked",), "provisioned"),
    "wiped": (("blocked",), "wiped"),
    "retire": (("registered", "provisioned", "active", "blocked", "wiped"), "retired"),
}
# who may ask for each action (the fleet itself activates; a phone enrols with its token)
ROLES: dict[str, tuple[str, ...]] = {
    "register": ("admin", "manager", "technician"),
    "provision": ("admin", "technician"),
    "enrolment": ("admin", "technician"),
    "unblock": ("admin", "technician"),
    "wiped": ("admin", "technician"),
    "block": ("admin", "manager"),
    "retire": ("admin", "manager"),
}


class LifecycleError(Exception):
    """Refused: `status` is the HTTP status the API answers (404, 403, 409, 422, 401, 410)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@contextmanager
def settled(session: Session) -> Iterator[None]:
    """Around a lifecycle action: a refusal keeps what was written before it (a refused
    enrolment's audit entry) and goes on as LifecycleError; a broker failure undoes everything
    and goes on as LifecycleError 503."""
    try:
        yield
    except LifecycleError:
        session.commit()
        raise
    except BrokerAuthError as e:
        session.rollback()
        raise LifecycleError(503, f"{e}; nothing was changed · rien n'a été modifié") from None


@dataclass(frozen=True)
class Actor:
    who: str   # `api_key:3:console`, `cli:alice`, `fleet`, `enrolment:tge_AbC`
    role: str  # admin | manager | technician | fleet | device


FLEET = Actor("fleet", "fleet")


@dataclass(frozen=True)
class Credentials:
    """Shown once: only `hash_secret(password)` and the broker's own hash are kept."""

    ident: str
    username: str
    password: str
    client_id: str
    status: str
    broker_enforced: bool


@dataclass(frozen=True)
class Staged:
    """Staged credentials, shown once, and what confirms or abandons them."""

    credentials: Credentials
    staging_id: str
    expires_at: datetime
    maint_key: str | None = None  # the box's `mkey` setting (fleet.maintenance)


# -- secrets -----------------------------------------------------------------------------------
def hash_secret(secret: str, salt: bytes | None = None, iterations: int = 100_000) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    return "pbkdf2_sha256${}${}${}".format(iterations, base64.b64encode(salt).decode(),
                                           base64.b64encode(digest).decode())


def check_secret(secret: str, stored: str | None) -> bool:
    if not stored:
        return False
    _, iterations, salt, _digest = stored.split("$")
    again = hash_secret(secret, base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(again, stored)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def broker_proof(username: str, password: str) -> str:
    """What a box answers once it stored these broker credentials: the digest of its settings
    `user` and `pass` (firmware.runtime.settings.digest, the same code on the box). The
    password is 256 bits of randomness, so this hash gives nothing away."""
    from firmware.runtime.settings import digest

    return digest({"user": username, "pass": password})


# -- checks ------------------------------------------------------------------------------------
def get_device(session: Session, ident: str, organisation_id: int | None = None) -> Device:
    device = session.scalars(select(Device).where(Device.ident == ident)).first()
    if device is None or (organisation_id is not None
                          and device.organisation_id != organisation_id):
        raise LifecycleError(404, f"device {ident!r} not found")
    return device


def check_role(actor: Actor, action: str) -> None:
    allowed = ROLES.get(action)
    if allowed and actor.role not in allowed:
        raise LifecycleError(403, f"role {actor.role!r} may not {action} a device (needs "
                                  f"{' or '.join(allowed)})")


def next_status(device: Device, action: str) -> str:
    """The status `action` leads to, or a 409 naming what is allowed."""
    sources, target = TRANSITIONS[action]
    if device.status not in sources:
        raise LifecycleError(409, f"device {device.ident!r} is {device.status}: cannot "
                                  f"{action} it (only from {', '.join(sources)})")
    return target


def _reason(reason: str | None, action: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise LifecycleError(422, f"a reason is required to {action} a device")
    return reason


def _move(session: Session, device: Device, action: str, target: str, actor: Actor,
          why: str | None, detail: dict | None = None) -> None:
    before = device.status
    device.status, device.status_changed_at, device.status_reason = target, utcnow(), why
    audit.record(session, actor.who, action, f"device:{device.ident}", role=actor.role,
                 why=why, detail={"from": before, "to": target, **(detail or {})})


def _close_pending(session: Session, device: Device, result: str) -> int:
    return session.execute(
        update(DeviceCommand)
        .where(DeviceCommand.device_id == device.id, DeviceCommand.state.in_(("pending", "sent")))
        .values(state="failed", done_at=utcnow(), result=result[:500])).rowcount or 0


# -- actions -----------------------------------------------------------------------------------
def provision(session: Session, ident: str, actor: Actor, broker: BrokerControl, *,
              reason: str | None = None, action: str = "provision",
              organisation_id: int | None = None, device: Device | None = None) -> Credentials:
    """A new identity for the device: a random password the broker learns now, shown once.
    Whatever credentials it had stop working at once (the broker deletes the old client and
    kicks its connection). `action` is `unblock` to get a blocked device back."""
    if action != "enrol":
        check_role(actor, action)
    device = device or get_device(session, ident, organisation_id)
    target = next_status(device, action)
    password = new_password()
    broker.provision(device.ident, password)
    device.credential_hash = hash_secret(password)
    device.provisioned_at = utcnow()
    device.broker_username = None  # slot `<ident>`; the broker deleted the other one
    _clear_stage(device)
    closed = _close_pending(session, device, f"superseded: device re-provisioned by {actor.who}")
    _move(session, device, action, target, actor, reason,
          {"broker_enforced": broker.enforced, "commands_closed": closed})
    return Credentials(device.ident, device.ident, password, device.ident, device.status,
                       broker.enforced)


def _clear_stage(device: Device) -> None:
    device.staging_id = device.staged_username = device.staged_hash = None
    device.staged_proof = device.staged_expires_at = None


def _staged_device(session: Session, ident: str, actor: Actor, staging_id: str,
                   organisation_id: int | None) -> Device:
    """The device whose stage `staging_id` is; a 409, audited (`provision_refused`), if it
    has no such stage."""
    check_role(actor, "provision")
    device = get_device(session, ident, organisation_id)
    if not device.staging_id or not hmac.compare_digest(staging_id.encode(),
                                                        device.staging_id.encode()):
        audit.record(session, actor.who, "provision_refused", f"device:{device.ident}",
                     role=actor.role, why="no such staged credentials",
                     detail={"staging_id": staging_id})
        raise LifecycleError(409, f"device {ident!r} has no staged credentials {staging_id!r} "
                                  "(abandoned, replaced by a newer stage or already confirmed); "
                                  "its current credentials stay active")
    return device


def stage(session: Session, ident: str, actor: Actor, broker: BrokerControl, *,
          reason: str | None = None, ttl: timedelta = STAGE_TTL,
          organisation_id: int | None = None) -> Staged:
    """New credentials for a reader, shown once, that the broker holds disabled in the slot the
    device is not using: its current login keeps working. A stage replaces any earlier one."""
    check_role(actor, "provision")
    device = get_device(session, ident, organisation_id)
    if device.kind != "reader":
        raise LifecycleError(422, f"device {ident!r} is a {device.kind}: phones enrol with a "
                                  "one-time token, only readers are provisioned in two phases")
    next_status(device, "provision")
    # a device that never had credentials gets slot `<ident>`, like `provision` gives
    username = other_slot(device.ident, device.broker_username) if device.credential_hash \
        else device.ident
    password = new_password()
    broker.stage(device.ident, username, password)
    device.staging_id = secrets.token_urlsafe(16)
    device.staged_username = username
    device.staged_hash = hash_secret(password)
    device.staged_proof = broker_proof(username, password)
    device.staged_expires_at = utcnow() + ttl
    device.maint_key = device.maint_key or secrets.token_hex(32)  # kept across provisionings
    audit.record(session, actor.who, "provision_stage", f"device:{device.ident}",
                 role=actor.role, why=reason,
                 detail={"staging_id": device.staging_id, "username": username,
                         "expires_at": device.staged_expires_at.isoformat(),
                         "broker_enforced": broker.enforced})
    creds = Credentials(device.ident, username, password, device.ident, device.status,
                        broker.enforced)
    return Staged(creds, device.staging_id, device.staged_expires_at, device.maint_key)


def confirm(session: Session, ident: str, actor: Actor, broker: BrokerControl, staging_id: str,
            digest: str, *, organisation_id: int | None = None) -> Device:
    """The box stored the staged credentials (`digest` is its broker_proof): they become the
    device's login and the old one is deleted. Refusals are audited, and change nothing."""
    device = _staged_device(session, ident, actor, staging_id, organisation_id)
    target = f"device:{device.ident}"

    def refuse(status: int, why: str) -> LifecycleError:
        audit.record(session, actor.who, "provision_refused", target, role=actor.role, why=why,
                     detail={"staging_id": staging_id})
        return LifecycleError(status, why)

    if device.staged_expires_at <= utcnow():
        expired = device.staged_expires_at
        broker.abandon(device.staged_username)
        _clear_stage(device)
        raise refuse(410, f"the staged credentials expired at {expired:%H:%M:%S} UTC; the old "
                          "ones stay active: run provision again")
    if not hmac.compare_digest(digest.strip().lower().encode(), device.staged_proof.encode()):
        raise refuse(422, "the box's digest does not match the staged credentials (it did "
                          "not store them exactly); the old credentials stay active")
    next_status(device, "provision")
    old = (device.broker_username or device.ident) if device.credential_hash else None
    broker.confirm(device.staged_username, old)
    device.broker_username = device.staged_username
    device.credential_hash = device.staged_hash
    device.provisioned_at = utcnow()
    _clear_stage(device)
    closed = _close_pending(session, device, f"superseded: device re-provisioned by {actor.who}")
    _move(session, device, "provision", "provisioned", actor, None,
          {"broker_enforced": broker.enforced, "commands_closed": closed,
           "staging_id": staging_id, "username": device.broker_username, "previous": old})
    return device


def abandon(session: Session, ident: str, actor: Actor, broker: BrokerControl,
            staging_id: str, reason: str | None = None, *,
            organisation_id: int | None = None) -> Device:
    """The technician's tool gave up (the box refused, the line dropped): the staged login is
    deleted at the broker; the current one never stopped working."""
    device = _staged_device(session, ident, actor, staging_id, organisation_id)
    broker.abandon(device.staged_username)
    username = device.staged_username
    _clear_stage(device)
    audit.record(session, actor.who, "provision_abandon", f"device:{device.ident}",
                 role=actor.role, why=reason, detail={"staging_id": staging_id,
                                                      "username": username})
    return device


def block(session: Session, ident: str, actor: Actor, broker: BrokerControl, reason: str, *,
          organisation_id: int | None = None) -> DeviceCommand:
    """Lost or stolen: the broker disables the credentials (and drops the live connection)
    before anything else; then the device is `blocked` and a `wipe` command is queued. What
    the device's journal held beyond `acked_seq` will not be accepted: the audit entry says
    where the fleet stopped, so the visits concerned can be corrected."""
    check_role(actor, "block")
    why = _reason(reason, "block")
    device = get_device(session, ident, organisation_id)
    target = next_status(device, "block")
    broker.disable(device.broker_username or device.ident)
    if device.staged_username:
        broker.abandon(device.staged_username)
        _clear_stage(device)
    now = utcnow()
    # an enrolment token still unused dies with the block: a thief holding the QR code
    # cannot enrol the phone again
    dead = session.execute(update(EnrolmentToken).where(
        EnrolmentToken.device_id == device.id, EnrolmentToken.used_at.is_(None),
        EnrolmentToken.expires_at > now).values(expires_at=now)).rowcount
    cmd = DeviceCommand(device_id=device.id, kind="wipe", expires_at=now + WIPE_TTL,
                        created_by=actor.who, state="pending")
    session.add(cmd)
    session.flush()
    cmd.payload = {"id": cmd.id, "cmd": "wipe", "exp": int(cmd.expires_at.timestamp())}
    health = device.health or {}
    _move(session, device, "block", target, actor, why, {
        "broker_enforced": broker.enforced, "wipe_command": cmd.id,
        "acked_seq": device.acked_seq,
        "last_seen": device.last_seen.isoformat() if device.last_seen else None,
        "journal_depth_last_reported": health.get("jd"),
        "not_accepted": f"events after seq {device.acked_seq} still on the device",
        "enrolment_tokens_ended": dead})
    return cmd


def unblock(session: Session, ident: str, actor: Actor, broker: BrokerControl, *,
            reason: str | None = None, organisation_id: int | None = None) -> Credentials:
    return provision(session, ident, actor, broker, reason=reason, action="unblock",
                     organisation_id=organisation_id)


def record_wiped(session: Session, ident: str, actor: Actor, reason: str, *,
                 organisation_id: int | None = None) -> Device:
    """A technician confirms a recovered device was erased (reflashed)."""
    check_role(actor, "wiped")
    why = _reason(reason, "record the wipe of")
    device = get_device(session, ident, organisation_id)
    target = next_status(device, "wiped")
    session.execute(update(DeviceCommand).where(
        DeviceCommand.device_id == device.id, DeviceCommand.kind == "wipe",
        DeviceCommand.state.in_(("pending", "sent"))).values(
        state="done", done_at=utcnow(), result=f"wiped by hand: {why}"[:500]))
    _move(session, device, "wiped", target, actor, why)
    return device


def retire(session: Session, ident: str, actor: Actor, broker: BrokerControl, reason: str, *,
           organisation_id: int | None = None) -> Device:
    """Out of service for good: the broker forgets the client and its role."""
    check_role(actor, "retire")
    why = _reason(reason, "retire")
    device = get_device(session, ident, organisation_id)
    target = next_status(device, "retire")
    broker.delete(device.ident)
    device.credential_hash = device.broker_username = None
    _clear_stage(device)
    _close_pending(session, device, f"device retired by {actor.who}")
    _move(session, device, "retire", target, actor, why, {"broker_enforced": broker.enforced})
    return device


def activate_contacted(session: Session, idents: set[str]) -> list[str]:
    """Provisioned devices that just sent something become active (called by the worker)."""
    if not idents:
        return []
    devices = session.scalars(select(Device).where(
        Device.ident.in_(idents), Device.status == "provisioned")).all()
    for device in devices:
        _move(session, device, "activate", "active", FLEET, "first message with its "
              "provisioned credentials")
    return [d.ident for d in devices]


def register(session: Session, ident: str, kind: str, actor: Actor, *,
             client_id: int | None = None, caregiver_id: int | None = None,
             organisation_id: int | None = None) -> Device:
    """A new device, `registered`: a reader installed at a client's home, or a caregiver's
    phone. It belongs to its owner's organisation; `organisation_id` is the actor's scope (None:
    every organisation), and an owner outside it is as unknown as a missing one. Audited; the
    caller commits (the API and the console's "Register a device" form both call this)."""
    check_role(actor, "register")
    if not IDENT.match(ident or ""):
        raise LifecycleError(422, f"{ident!r} is not a device ident: 1 to 64 letters, digits, "
                                  "- or _")
    if kind == "reader":
        if client_id is None or caregiver_id is not None:
            raise LifecycleError(422, "a reader is installed at a client: give client_id")
        owner = session.get(Client, client_id)
    elif kind == "phone":
        if caregiver_id is None or client_id is not None:
            raise LifecycleError(422, "a phone belongs to a caregiver: give caregiver_id")
        owner = session.get(Caregiver, caregiver_id)
    else:
        raise LifecycleError(422, f"kind must be reader or phone, not {kind!r}")
    if owner is None or organisation_id not in (None, owner.organisation_id):
        raise LifecycleError(422, "the device's client or caregiver does not exist")
    device = Device(ident=ident, kind=kind, organisation_id=owner.organisation_id,
                    client_id=client_id, caregiver_id=caregiver_id)
    try:
        with session.begin_nested():
            session.add(device)
    except IntegrityError:
        raise LifecycleError(409, f"device {ident!r} is already registered") from None
    audit.record(session, actor.who, "register", f"device:{ident}", role=actor.role,
                 detail={"ident": ident, "kind": kind, "client_id": client_id,
                         "caregiver_id": caregiver_id})
    return device


# -- phones: one-time enrolment tokens ---------------------------------------------------------
def create_enrolment(session: Session, ident: str, actor: Actor, *,
                     ttl: timedelta = ENROLMENT_TTL,
                     organisation_id: int | None = None) -> tuple[str, datetime]:
    """A token the phone exchanges once, before it expires, for its credentials (shown as a
    QR code by the console). Only its sha256 is kept."""
    check_role(actor, "enrolment")
    device = get_device(session, ident, organisation_id)
    if device.kind != "phone":
        raise LifecycleError(422, f"device {ident!r} is a {device.kind}: readers are "
                                  "provisioned by a technician, phones enrol")
    next_status(device, "enrol")
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    expires = utcnow() + ttl
    session.add(EnrolmentToken(device_id=device.id, token_hash=_token_hash(token),
                               expires_at=expires, created_by=actor.who))
    audit.record(session, actor.who, "enrolment", f"device:{ident}", role=actor.role,
                 detail={"expires_at": expires.isoformat(), "token_prefix": token[:8]})
    return token, expires


def enrol(session: Session, token: str, broker: BrokerControl) -> Credentials:
    """Exchange a token for credentials, once. A refusal is written to the audit log before
    it is raised (the caller commits in both cases)."""
    row = session.scalars(select(EnrolmentToken).where(
        EnrolmentToken.token_hash == _token_hash(token))).first()
    actor = Actor(f"enrolment:{token[:8]}", "device")

    def refuse(status: int, why: str, target: str = "enrolment") -> LifecycleError:
        audit.record(session, actor.who, "enrol_refused", target, role=actor.role, why=why)
        return LifecycleError(status, why)

    if row is None:
        raise refuse(401, "unknown enrolment token")
    device = session.get(Device, row.device_id)
    target = f"device:{device.ident}"
    if row.used_at is not None:
        raise refuse(410, f"enrolment token already used at {row.used_at.isoformat()}", target)
    if row.expires_at <= utcnow():
        raise refuse(410, f"enrolment token expired at {row.expires_at.isoformat()}", target)
    try:
        next_status(device, "enrol")
    except LifecycleError as e:
        raise refuse(409, e.message, target) from None
    row.used_at = utcnow()
    return provision(session, device.ident, actor, broker, action="enrol", device=device,
                     reason="phone enrolled with a one-time token")
