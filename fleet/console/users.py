"""Console accounts (the `users` table): create, change a password, list. Used by the CLI."""
from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.console.auth import AuthError, hash_password
from fleet.models import ROLES, Organisation, User

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def find_user(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(
        func.lower(User.email) == email.strip().lower())).first()


def create_user(session: Session, email: str, role: str, password: str, *,
                organisation_id: int | None = None, by: str = "cli") -> User:
    """A new active user; the caller commits. `organisation_id` None: sees every
    organisation (the console then works on the first one)."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise AuthError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if find_user(session, email) is not None:
        raise AuthError(f"a user {email} already exists (change the password with "
                        "`telegest fleet user passwd`)")
    if organisation_id is not None and session.get(Organisation, organisation_id) is None:
        raise AuthError(f"organisation {organisation_id} not found")
    user = User(email=email, role=role, organisation_id=organisation_id,
                password_hash=hash_password(password), active=True)
    session.add(user)
    session.flush()
    audit.record(session, by, "create", f"user:{email}", role="admin",
                 detail={"role": role, "organisation_id": organisation_id})
    return user


def set_password(session: Session, email: str, password: str, *, by: str = "cli") -> User:
    """New password; every open session of this user ends (its fingerprint changes)."""
    user = find_user(session, email)
    if user is None:
        raise AuthError(f"no user {email.strip().lower()}")
    user.password_hash = hash_password(password)
    audit.record(session, by, "passwd", f"user:{user.email}", role="admin")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))
