"""Console sessions kept in the database (`console_sessions`), so that they can be ended.

The cookie holds a random token; the table keeps only its sha256, the CSRF token, who (a user
or an API key), and when it started, was last seen and must end. A session ends after
`idle` without a request, or at its absolute end however active; logout deletes its row,
"sign out everywhere", a new password and disabling the user delete all of the user's rows.
Every request reads the user again, so a changed role or a deactivation takes effect at once.
last_seen_at is written at most once a minute: not a database write per page.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from fleet.models import ApiKey, ConsoleSession, User
from fleet.types import utcnow

SEEN_EVERY = timedelta(seconds=60)


class SessionState:
    """Why a cookie signs no one in."""

    MISSING, EXPIRED, INVALID = "missing", "expired", "invalid"


@dataclass(frozen=True)
class Lifetimes:
    """How long a session lasts: without a request (`idle`) and at most (`absolute`); from
    the settings (TELEGEST_CONSOLE_IDLE_MINUTES, TELEGEST_CONSOLE_SESSION_MINUTES)."""

    idle: timedelta
    absolute: timedelta

    @classmethod
    def of(cls, settings) -> "Lifetimes":
        return cls(timedelta(minutes=settings.console_idle_minutes),
                   timedelta(minutes=settings.console_session_minutes))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, lifetimes: Lifetimes, *, user: User | None = None,
          key: ApiKey | None = None, now: datetime | None = None) -> tuple[str, ConsoleSession]:
    """A new session for a user or an API key: (the cookie's token, its row). Rows already
    ended are purged on the way: an ended row stays until the next sign-in, or until its
    cookie comes back (find). The caller commits."""
    now = now or utcnow()
    purge(session, lifetimes, now)
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(token_hash=token_hash(token), csrf=secrets.token_urlsafe(24),
                         user_id=user.id if user else None, api_key_id=key.id if key else None,
                         created_at=now, last_seen_at=now, expires_at=now + lifetimes.absolute)
    session.add(row)
    session.flush()
    return token, row


def find(session: Session, token: str | None, lifetimes: Lifetimes,
         now: datetime | None = None, touch: bool = True) -> ConsoleSession | str:
    """The live row of this cookie's token, seen now unless `touch` is False (the board's
    automatic refresh is no one at the keyboard); or why not: `missing` (no cookie, or no such
    session: signed out, ended everywhere), `expired` (idle too long or past its end; the row
    is deleted)."""
    if not token:
        return SessionState.MISSING
    now = now or utcnow()
    row = session.scalars(select(ConsoleSession).where(
        ConsoleSession.token_hash == token_hash(token))).first()
    if row is None:
        return SessionState.MISSING
    if now >= row.expires_at or now - row.last_seen_at >= lifetimes.idle:
        session.delete(row)
        session.commit()
        return SessionState.EXPIRED
    if touch and now - row.last_seen_at >= SEEN_EVERY:
        row.last_seen_at = now
        session.commit()
    return row


def end(session: Session, session_id: int) -> None:
    """Delete this session's row (sign-out). The caller commits."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.id == session_id))


def end_all(session: Session, user_id: int, keep_id: int | None = None) -> int:
    """Delete every session of this user (but the one `keep_id`); how many ended. The caller
    commits."""
    stmt = delete(ConsoleSession).where(ConsoleSession.user_id == user_id)
    if keep_id is not None:
        stmt = stmt.where(ConsoleSession.id != keep_id)
    return session.execute(stmt, execution_options={"synchronize_session": False}).rowcount


def _ended(lifetimes: Lifetimes, now: datetime):
    """Past its end or idle too long: what `find` refuses and `purge` deletes."""
    return or_(ConsoleSession.expires_at <= now,
               ConsoleSession.last_seen_at <= now - lifetimes.idle)


def of_user(session: Session, user_id: int, lifetimes: Lifetimes,
            now: datetime | None = None) -> list[ConsoleSession]:
    """The user's open sessions, last seen first (an ended row not yet deleted is not one)."""
    return list(session.scalars(select(ConsoleSession).where(
        ConsoleSession.user_id == user_id, ~_ended(lifetimes, now or utcnow()))
        .order_by(ConsoleSession.last_seen_at.desc())))


def purge(session: Session, lifetimes: Lifetimes, now: datetime | None = None) -> int:
    return session.execute(delete(ConsoleSession).where(_ended(lifetimes, now or utcnow())),
                           execution_options={"synchronize_session": False}).rowcount
