"""Sending a form twice does one thing: each rendered form carries a random `form_id`, and the
write it causes is recorded in the audit log with it. A second POST with the same `form_id`
finds that entry and leads to what the first one made.

The audit log is the store (no table to add); a lock per form id covers two POSTs racing in
this process, and the data checks (a visit already planned at that time) cover the rest.
"""
from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import AuditLog
from fleet.types import utcnow

WINDOW = timedelta(hours=12)
_FORM_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def new_form_id() -> str:
    return secrets.token_urlsafe(18)


def earlier_result(session: Session, who: str, form_id: str) -> str | None:
    """The audit target (`visit:12`) written by an earlier POST of this form, if any."""
    since = utcnow() - WINDOW
    for target, detail in session.execute(
            select(AuditLog.target, AuditLog.detail).where(
                AuditLog.who == who, AuditLog.at >= since).order_by(AuditLog.id.desc())):
        if isinstance(detail, dict) and detail.get("form_id") == form_id:
            return target
    return None


@contextmanager
def once(form_id: str) -> Iterator[None]:
    """Hold the lock of this form id while checking and writing."""
    if not _FORM_ID.match(form_id or ""):
        raise ValueError("missing form id")
    with _guard:
        lock = _locks.setdefault(form_id, threading.Lock())
        if len(_locks) > 10_000:  # forget old ids; the audit log still answers for them
            for k in list(_locks)[:5_000]:
                if k != form_id:
                    _locks.pop(k, None)
    with lock:
        yield
