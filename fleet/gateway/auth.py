"""Who is calling: the phone's device ident and password from enrolment, as HTTP Basic.

The password is checked against Device.credential_hash with fleet.lifecycle.check_secret
(PBKDF2, about 50 ms). A phone polls every few seconds, so a successful check is remembered
for as long as the stored hash stays the same: re-provisioning or unblocking changes the hash
and forgets it. A device whose identity has ended (blocked, wiped, retired) is told to erase
what it holds: 403 with `Clear-Site-Data: "storage"`. A wrong password is only a 401: a
phone must never erase itself because it was refused (a misconfigured fleet would otherwise
wipe every phone), only because the fleet says, for its own identity, that it is blocked.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections import OrderedDict
from threading import Lock

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import throttle
from fleet.lifecycle import check_secret
from fleet.models import Device

ENDED = ("blocked", "wiped", "retired")
_CACHE_MAX = 10_000
_verified: OrderedDict[tuple[str, str], str] = OrderedDict()
_lock = Lock()


class DeviceRefused(Exception):
    """The gateway's refusals: `status` 401 (who are you?) or 403 (identity ended: wipe)."""

    def __init__(self, status: int, error: str, detail: str, *, wipe: bool = False,
                 device: Device | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.retry_after = retry_after
        self.lockouts: list[str] = []  # the throttle keys this refusal locked (to audit)
        self.wipe = wipe
        self.device_status = device.status if device else None
        self.device_id = device.id if device else None


def parse_basic(header: str | None) -> tuple[str, str]:
    """(ident, password) from an `Authorization: Basic ...` header, or a 401."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value:
        raise DeviceRefused(401, "unauthenticated", "send the device ident and password from "
                            "enrolment as HTTP Basic credentials")
    try:
        ident, sep, password = base64.b64decode(value.strip(), validate=True).decode(
            ).partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise DeviceRefused(401, "unauthenticated", "malformed Basic credentials")
    return ident, password


def _password_ok(device: Device, password: str) -> bool:
    if not device.credential_hash:
        return False
    key = (device.ident, hashlib.sha256(password.encode()).hexdigest())
    with _lock:
        if _verified.get(key) == device.credential_hash:
            _verified.move_to_end(key)
            return True
    try:
        with throttle.hashing():
            good = check_secret(password, device.credential_hash)
    except throttle.Busy:
        raise DeviceRefused(503, "busy", "too many authentications at once: retry in a "
                            "moment", retry_after=1) from None
    if not good:
        return False
    with _lock:
        _verified[key] = device.credential_hash
        while len(_verified) > _CACHE_MAX:
            _verified.popitem(last=False)
    return True


def authenticate(session: Session, header: str | None, address: str = "?") -> Device:
    """The calling phone, active or provisioned; raises DeviceRefused otherwise. Failures are
    counted per ident and per address (fleet.throttle): past the limit, 429 before any hash."""
    ident, password = parse_basic(header)
    keys = (f"phone:{ident[:64]}", f"address:{address}")
    wait = max(throttle.ACCOUNTS.locked_for(keys[0]), throttle.ADDRESSES.locked_for(keys[1]))
    if wait:
        raise DeviceRefused(429, "locked", "too many failed authentications: retry later",
                            retry_after=wait)
    try:
        device = _identify(session, ident, password)
    except DeviceRefused as e:
        if e.status == 401:
            e.lockouts = [k for lim, k in zip((throttle.ACCOUNTS, throttle.ADDRESSES), keys)
                          if lim.failure(k)]
        raise
    return device


def _identify(session: Session, ident: str, password: str) -> Device:
    device = session.scalars(select(Device).where(Device.ident == ident)).first()
    if device is None or device.kind != "phone":
        raise DeviceRefused(401, "unknown_device", f"no phone {ident!r} in this fleet")
    if device.status in ("wiped", "retired"):
        # the identity is gone for good (and a retired one has no password left to check)
        raise DeviceRefused(403, device.status, _ENDED_TEXT[device.status], wipe=True,
                            device=device)
    if not _password_ok(device, password):
        raise DeviceRefused(401, "bad_credentials", "wrong password for this device: enrol "
                            "the phone again (a new QR code from the console)")
    if device.status == "blocked":
        raise DeviceRefused(403, "blocked", _ENDED_TEXT["blocked"], wipe=True,
                            device=device)
    if device.status not in ("provisioned", "active"):
        raise DeviceRefused(401, "not_enrolled", f"device {ident!r} is {device.status}: "
                            "enrol it first")
    return device


_ENDED_TEXT = {
    "blocked": "this phone was declared lost or stolen: its data is erased; ask your agency "
               "to enrol it again",
    "wiped": "this phone's identity was erased: ask your agency to enrol it again",
    "retired": "this phone is out of service: ask your agency for another one",
}
