"""The audit log as a hash chain: each entry carries the hash of the one before it, so that an
entry changed, removed or slipped in afterwards breaks the chain where it happened.

Every audit entry, whoever writes it (fleet.audit, the API's data functions), is chained when
its session flushes: the chain's head row is locked (`SELECT ... FOR UPDATE` on PostgreSQL;
SQLite has one writer at a time), each new entry gets `prev_hash` = the head and `hash` =
sha256(prev_hash and the entry's fields, in a fixed text form), and the head moves. `verify`
walks the entries in id order. Entries written before migration 0009 carry no hash: they may
only come before the first hashed one. The retention job (fleet.retention) purges the oldest
entries and records the hash the chain then starts from (`retention_runs.audit_anchor`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timezone

from sqlalchemy import event, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_state

from fleet.models import AuditChainHead, AuditLog, RetentionRun
from fleet.types import utcnow

GENESIS = "0" * 64


def entry_hash(prev: str, e: AuditLog) -> str:
    """sha256 of the previous hash and the entry's fields in a fixed text form."""
    at = e.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if e.at else ""
    text = json.dumps([prev, at, e.who, e.role, e.action, e.target, e.why, e.detail],
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@event.listens_for(Session, "before_flush")
def _chain(session: Session, _flush_context, _instances) -> None:
    new = [o for o in session.new if isinstance(o, AuditLog)]
    if not new:
        return
    head = session.scalars(select(AuditChainHead).where(AuditChainHead.id == 1)
                           .with_for_update()).first()
    if head is None:  # a database migrated before 0009's head row (never in practice)
        head = AuditChainHead(id=1, hash=GENESIS)
        session.add(head)
    prev = head.hash
    for entry in sorted(new, key=lambda o: instance_state(o).insert_order or 0):
        if entry.at is None:
            entry.at = utcnow()
        entry.prev_hash = prev
        entry.hash = prev = entry_hash(prev, entry)
    head.hash = prev


@dataclass
class Verdict:
    ok: bool
    checked: int
    unhashed: int  # entries from before the chain began (migration 0009)
    broken_at: int | None = None
    why: str = ""


def verify(session: Session, batch: int = 5000) -> Verdict:
    """Walk the chain in id order: every hashed entry must follow the one before it."""
    anchor = session.scalar(select(RetentionRun.audit_anchor).where(
        RetentionRun.audit_anchor.is_not(None)).order_by(RetentionRun.id.desc()).limit(1))
    expected: str | None = None
    checked = unhashed = 0
    last_id = 0
    while True:
        rows = list(session.scalars(select(AuditLog).where(AuditLog.id > last_id)
                                    .order_by(AuditLog.id).limit(batch)))
        if not rows:
            break
        for e in rows:
            last_id = e.id
            if e.hash is None:
                if expected is not None:
                    return Verdict(False, checked, unhashed, e.id, "an entry without a hash "
                                   "after the chain began (inserted or wiped)")
                unhashed += 1
                continue
            if expected is None:  # the chain's first entry we hold
                expected = e.prev_hash if e.prev_hash in (GENESIS, anchor) else None
                if expected is None:
                    return Verdict(False, checked, unhashed, e.id, "the chain does not start "
                                   "where it began or where the last retention run left it "
                                   "(entries removed)")
            if e.prev_hash != expected:
                return Verdict(False, checked, unhashed, e.id, "does not follow the entry "
                               "before it (an entry removed or inserted)")
            if entry_hash(e.prev_hash, e) != e.hash:
                return Verdict(False, checked, unhashed, e.id, "changed after it was written")
            expected = e.hash
            checked += 1
        session.expunge_all()
    head = session.scalar(select(AuditChainHead.hash).where(AuditChainHead.id == 1))
    if expected is not None and head is not None and head != expected:
        return Verdict(False, checked, unhashed, None, "the newest entries were removed (the "
                       "chain's head is further on)")
    return Verdict(True, checked, unhashed)
