"""API keys: random tokens shown once, stored as their sha256."""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import ROLES, ApiKey
from fleet.types import utcnow

PREFIX = "tg_"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_api_key(session: Session, role: str, label: str = "",
                   organisation_id: int | None = None) -> str:
    """Create a key with `role` (admin | manager | technician); return its plaintext, which is
    not stored anywhere. A key without an organisation sees every organisation."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    plaintext = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(key_hash=hash_key(plaintext), prefix=plaintext[:10], label=label,
                       role=role, organisation_id=organisation_id))
    session.flush()
    return plaintext


def find_api_key(session: Session, plaintext: str) -> ApiKey | None:
    key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext))).first()
    if key is None or key.revoked:
        return None
    key.last_used_at = utcnow()
    return key
