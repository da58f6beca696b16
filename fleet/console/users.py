"""Console accounts (the `users` table): create, change a password, disable, list; used by the
CLI and by the account page (fleet.console.account)."""
from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet import audit, i18n
from fleet.console import sessions
from fleet.console.auth import AuthError, hash_password
from fleet.models import ROLES, Organisation, User

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def find_user(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(
        func.lower(User.email) == email.strip().lower())).first()


def create_user(session: Session, email: str, role: str, password: str, *,
                organisation_id: int | None = None, by: str = "cli",
                language: str | None = None) -> User:
    """A new active user; the caller commits. `organisation_id` None: sees every
    organisation (the console then works on the first one). `language` fr or en, None: the
    browser's (fleet.i18n)."""
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise AuthError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if find_user(session, email) is not None:
        raise AuthError(f"a user {email} already exists (change the password with "
                        "`telegest fleet user passwd`)")
    if organisation_id is not None and session.get(Organisation, organisation_id) is None:
        raise AuthError(f"organisation {organisation_id} not found")
    if language is not None and language not in i18n.LANGUAGES:
        raise AuthError(f"language must be one of {', '.join(i18n.LANGUAGES)}, not {language!r}")
    user = User(email=email, role=role, organisation_id=organisation_id,
                password_hash=hash_password(password), active=True, language=language)
    session.add(user)
    session.flush()
    audit.record(session, by, "create", f"user:{email}", role="admin",
                 detail={"role": role, "organisation_id": organisation_id})
    return user


def set_language(session: Session, user_id: int, language: str | None, by: str,
                 role: str | None = None) -> None:
    """The console's language of this user: `fr`, `en`, or None (the browser's
    Accept-Language); audited; the caller commits."""
    if language is not None and language not in i18n.LANGUAGES:
        raise AuthError(f"language must be one of {', '.join(i18n.LANGUAGES)}, not {language!r}")
    user = session.get(User, user_id)
    if user is None:
        raise AuthError(f"no user {user_id}")
    if user.language != language:
        audit.record(session, by, "language", f"user:{user.email}", role=role,
                     detail={"before": user.language, "after": language})
        user.language = language


def _user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise AuthError(f"no user {email.strip().lower()}")
    return user


def set_password(session: Session, email: str, password: str, *, by: str = "cli",
                 keep_id: int | None = None) -> User:
    """New password; every open session of this user ends but the one `keep_id` (the one that
    changed it, from the console). The caller commits."""
    user = _user(session, email)
    user.password_hash = hash_password(password)
    ended = sessions.end_all(session, user.id, keep_id)
    audit.record(session, by, "passwd", f"user:{user.email}", role="admin",
                 detail={"sessions_ended": ended})
    return user


def set_active(session: Session, email: str, active: bool, *, by: str = "cli") -> int:
    """Disable (active=False) or enable a user; disabling ends every session of theirs at
    once. How many sessions ended; the caller commits."""
    user = _user(session, email)
    ended = 0 if active else sessions.end_all(session, user.id)
    if user.active != active:
        user.active = active
        audit.record(session, by, "enable" if active else "disable", f"user:{user.email}",
                     role="admin", detail={"sessions_ended": ended})
    return ended


def sign_out_everywhere(session: Session, user_id: int, who: str, role: str) -> int:
    """End every session of this user, the current one too; audited. The caller commits."""
    ended = sessions.end_all(session, user_id)
    audit.record(session, who, "sign_out_everywhere", who, role=role,
                 detail={"sessions_ended": ended})
    return ended


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))
