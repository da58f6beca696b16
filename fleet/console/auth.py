"""Who is signed in to the console: argon2 passwords, sessions, CSRF tokens.

A session is a row of `console_sessions` (fleet.console.sessions) named by a random token in
the cookie. Every request loads the user again, so a deactivated user or a changed role takes
effect at once; the session only says who, never what they may do. The CSRF token lives in
the session and is sent back in a hidden field by every form; before sign-in, a short-lived
cookie signed with HMAC-SHA256 plays that part for the login form.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet.config import _WEAK_SECRETS as _WEAK
from fleet.console import sessions
from fleet.console.sessions import Lifetimes, SessionState
from fleet.keys import find_api_key, usable
from fleet.models import ApiKey, User
from fleet.throttle import hashing

SESSION_COOKIE = "tg_session"
PRELOGIN_COOKIE = "tg_prelogin"
PRELOGIN_SECONDS = 30 * 60
MIN_PASSWORD = 12
_COMMON_FILE = Path(__file__).resolve().parents[1] / "data" / "common-passwords.txt.gz"

# OWASP's argon2id profile (19 MiB, 2 passes, 1 lane): one core per hash, a few tens of ms;
# older hashes still verify and are rehashed at the next sign-in
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# verified against when the email is unknown, so that both answers take as long
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AuthError(ValueError):
    """A password or account refused; the message is for the person at the keyboard."""


# -- passwords -----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The 20,000 most common passwords (fleet/data, from Django's list: its licence is beside
    it), lower case, plus the product's own defaults."""
    with gzip.open(_COMMON_FILE, "rt", encoding="utf-8") as f:
        words = {line.strip().lower() for line in f if line.strip()}
    return frozenset(words | {"telegest", "changeme", "telegest-admin", "motdepasse"})


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password needs at least {MIN_PASSWORD} characters · le mot de "
                        f"passe doit compter au moins {MIN_PASSWORD} caractères")
    folded = password.lower()
    if folded in common_passwords() or len(set(folded)) < 4:
        raise AuthError("this password is among the most common ones: choose another · ce "
                        "mot de passe est parmi les plus courants : choisissez-en un autre")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(password)


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None. Rehashes an old-parameter hash."""
    user = session.scalars(select(User).where(
        func.lower(User.email) == email.strip().lower())).first()
    stored = user.password_hash if user and user.password_hash else _DUMMY_HASH
    try:
        with hashing():  # raises throttle.Busy when every slot stays taken
            _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active or not user.password_hash:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


# -- signed cookies ------------------------------------------------------------------------------
def _secret() -> bytes:
    """The key of the pre-login cookie: TELEGEST_CONSOLE_SECRET when set (several API
    processes must share it); otherwise a random secret per process, and a sign-in form
    served before a restart, or by another process, is refused as out of date."""
    global _SECRET
    if _SECRET is None:
        env = os.environ.get("TELEGEST_CONSOLE_SECRET", "")
        if env and (len(env) < 32 or env.lower() in _WEAK):
            raise RuntimeError("TELEGEST_CONSOLE_SECRET must be at least 32 random characters")
        _SECRET = env.encode() if env else secrets.token_bytes(32)
    return _SECRET


_SECRET: bytes | None = None


def sign(payload: dict) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(_secret(), body, hashlib.sha256).digest()
    return (body + b"." + base64.urlsafe_b64encode(mac)).decode()


def unsign(value: str) -> dict | None:
    """The payload of a cookie we signed, or None when it was forged or mangled."""
    try:
        body, mac = value.encode().split(b".", 1)
        good = hmac.new(_secret(), body, hashlib.sha256).digest()
        if not hmac.compare_digest(base64.urlsafe_b64decode(mac), good):
            return None
        payload = json.loads(base64.urlsafe_b64decode(body))
    except (ValueError, TypeError):
        return None
    return payload if isinstance(payload, dict) else None


def tokens_match(a: str | None, b: str | None) -> bool:
    return bool(a and b) and hmac.compare_digest(a.encode(), b.encode())


# -- the signed-in person ------------------------------------------------------------------------
@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page, as read again from the database on every request."""

    who: str                 # `user:alice@agency.fr` or `api_key:3:label`, for the audit log
    role: str                # admin | manager | technician
    organisation_id: int | None
    csrf: str
    user_id: int | None = None
    session_id: int | None = None  # its console_sessions row
    language: str | None = None    # the user's setting (fleet.i18n); None: Accept-Language

    @property
    def plans(self) -> bool:
        """Sees client records and the planning (technicians see devices and health only)."""
        return self.role in ("admin", "manager")

    def may(self, action: str) -> bool:
        from fleet.lifecycle import ROLES

        return self.role in ROLES.get(action, ())


def viewer_from_cookie(session: Session, cookie: str | None, lifetimes: Lifetimes,
                       now: datetime | None = None, touch: bool = True) -> Viewer | str:
    """The Viewer, or why not: `missing` (no cookie, signed out, ended everywhere), `expired`
    (idle too long, or past its absolute end) or `invalid` (user gone or deactivated, key
    revoked: the session is deleted as well)."""
    row = sessions.find(session, cookie, lifetimes, now, touch)
    if isinstance(row, str):
        return row
    if row.user_id is not None:
        user = session.get(User, row.user_id)
        if user is not None and user.active:
            return Viewer(f"user:{user.email}", user.role, user.organisation_id, row.csrf,
                          user.id, row.id, user.language)
    elif row.api_key_id is not None:
        key = session.get(ApiKey, row.api_key_id)
        if key is not None and usable(key):
            return Viewer(f"api_key:{key.id}:{key.label}"[:200], key.role, key.organisation_id,
                          row.csrf, None, row.id)
    sessions.end(session, row.id)
    session.commit()
    return SessionState.INVALID


def key_sign_in(session: Session, plaintext: str) -> ApiKey | None:
    return find_api_key(session, plaintext.strip()) if plaintext.strip() else None
