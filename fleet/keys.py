"""API keys: random tokens shown once, stored as their sha256, with a role, a name (`label`),
a daily quota (fleet.quotas) and an optional expiry; listed and revoked by the console and
`telegest fleet apikey`."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fleet.models import ROLES, ApiKey, ConsoleSession, Organisation
from fleet.quotas import DEFAULT_QUOTA
from fleet.types import utcnow

PREFIX = "tg_"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


MAX_QUOTA = 100_000_000


def create_api_key(session: Session, role: str, label: str = "",
                   organisation_id: int | None = None, daily_quota: int = DEFAULT_QUOTA,
                   expires_at: datetime | None = None) -> str:
    """Create a key with `role` (admin | manager | technician); return its plaintext, which is
    not stored anywhere. A key without an organisation sees every organisation. It may make
    `daily_quota` calls a UTC day (fleet.quotas) and is refused from `expires_at` on."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not 1 <= daily_quota <= MAX_QUOTA:
        raise ValueError(f"the daily quota must be from 1 to {MAX_QUOTA}, not {daily_quota}")
    if expires_at is not None and expires_at <= utcnow():
        raise ValueError("the expiry must be in the future")
    if organisation_id is not None and session.get(Organisation, organisation_id) is None:
        raise ValueError(f"no organisation {organisation_id}")
    plaintext = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(key_hash=hash_key(plaintext), prefix=plaintext[:10], label=label,
                       role=role, organisation_id=organisation_id, daily_quota=daily_quota,
                       expires_at=expires_at))
    session.flush()
    return plaintext


def usable(key: ApiKey, now: datetime | None = None) -> bool:
    """Neither revoked nor expired."""
    return not key.revoked and (key.expires_at is None or key.expires_at > (now or utcnow()))


def find_api_key(session: Session, plaintext: str) -> ApiKey | None:
    key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext))).first()
    if key is None or not usable(key):
        return None
    key.last_used_at = utcnow()
    return key


def list_keys(session: Session, organisation_id: int | None = None) -> list[ApiKey]:
    """Every key, or an organisation's, newest first."""
    q = select(ApiKey).order_by(ApiKey.id.desc())
    if organisation_id is not None:
        q = q.where(ApiKey.organisation_id == organisation_id)
    return list(session.scalars(q))


def revoke(session: Session, key: ApiKey) -> bool:
    """Revoke the key (its console sessions end with it); False if it already was."""
    if key.revoked:
        return False
    key.revoked = True
    session.execute(delete(ConsoleSession).where(ConsoleSession.api_key_id == key.id))
    return True
