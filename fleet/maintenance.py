"""One-time maintenance codes that open a reader's serial console (docs/security.md).

`issue` computes a code with the reader's maintenance key (`Device.maint_key`, given to the box
at its staged provisioning) by firmware/maintcode.py, the code the box checks offline. Admins
and technicians only; every code issued is in the audit log (who, which device, until when,
its nonce), never the code itself.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from firmware import maintcode
from fleet import audit
from fleet.lifecycle import Actor, LifecycleError, check_role, get_device
from fleet.types import utcnow


@dataclass(frozen=True)
class MaintenanceCode:
    ident: str
    code: str
    expires_at: datetime


def issue(session: Session, ident: str, actor: Actor, *, reason: str | None = None,
          organisation_id: int | None = None, now: datetime | None = None) -> MaintenanceCode:
    """A code valid 30 minutes that opens `ident`'s console once; the caller commits."""
    check_role(actor, "provision")
    device = get_device(session, ident, organisation_id)
    if device.kind != "reader":
        raise LifecycleError(422, f"device {ident!r} is a {device.kind}: only readers have a "
                                  "serial console")
    if device.status in ("wiped", "retired"):
        raise LifecycleError(409, f"device {ident!r} is {device.status}: no maintenance code")
    if not device.maint_key:
        raise LifecycleError(409, f"device {ident!r} has no maintenance key yet: its console "
                                  "stays open until `telegest device provision` gives it one")
    now = now or utcnow()
    nonce = secrets.randbelow(1 << 16)
    code, expiry = maintcode.issue(bytes.fromhex(device.maint_key), device.ident,
                                   int(now.timestamp()), nonce)
    expires_at = datetime.fromtimestamp(expiry, timezone.utc)
    audit.record(session, actor.who, "maintenance_code", f"device:{device.ident}",
                 role=actor.role, why=reason,
                 detail={"expires_at": expires_at.isoformat(), "nonce": nonce})
    return MaintenanceCode(device.ident, code, expires_at)
