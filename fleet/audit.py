"""The audit log: who did what to which thing, when and why. Written by every manager and IT
action (API and CLI alike) and by the fleet itself (who = `fleet`)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from fleet.models import AuditLog


def record(session: Session, who: str, action: str, target: str, *, role: str | None = None,
           why: str | None = None, detail: dict | None = None) -> AuditLog:
    entry = AuditLog(who=who[:200], role=role, action=action, target=target[:200], why=why,
                     detail=detail)
    session.add(entry)
    return entry


def query(target: str | None = None, action: str | None = None,
          since: datetime | None = None) -> Select:
    """Newest first. `target` is exact (`device:r-0042`) or a prefix ending in `*`."""
    stmt = select(AuditLog).order_by(AuditLog.id.desc())
    if target:
        stmt = stmt.where(AuditLog.target.startswith(target[:-1], autoescape=True)
                          if target.endswith("*") else AuditLog.target == target)
    if action:
        stmt = stmt.where(AuditLog.action == action)
    if since is not None:
        stmt = stmt.where(AuditLog.at >= since)
    return stmt
