"""Dependencies of the routes: a session per request, the caller's API key, role checks."""
from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from fleet import quotas
from fleet.keys import find_api_key
from fleet.models import ApiKey
from fleet.types import utcnow

_bearer = HTTPBearer(auto_error=False, description="an API key: `telegest fleet apikey`")


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def current_key(request: Request, session: SessionDep,
                creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                ) -> ApiKey:
    key = find_api_key(session, creds.credentials) if creds else None
    if key is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "missing, unknown, expired or revoked API key",
                            headers={"WWW-Authenticate": "Bearer"})
    now = utcnow()
    usage = quotas.count_call(session, key, now, request.app.state.quota_counter)
    session.commit()  # the count and last_used_at
    setattr(request.state, quotas.STATE_KEY, usage)  # quotas.RateLimitHeaders adds the headers
    if usage.exceeded:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"daily quota of {usage.limit} calls used up; it starts again at "
                            f"{usage.reset_at:%Y-%m-%d %H:%M} UTC",
                            headers={"Retry-After": str(usage.retry_after(now))})
    return key


KeyDep = Annotated[ApiKey, Depends(current_key)]


def require(*roles: str):
    def check(key: KeyDep) -> ApiKey:
        if key.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {key.role!r} may not do this (needs {' or '.join(roles)})")
        return key
    return Depends(check)


def _fleet_operator(key: KeyDep) -> ApiKey:
    """Firmware bundles and rollouts reach every agency's devices: only an admin key of no
    organisation (the fleet operator's) may upload or steer them."""
    if key.organisation_id is not None or key.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "firmware updates are the fleet "
                            "operator's: an admin key of no organisation is needed")
    return key


FLEET_OPERATOR = Depends(_fleet_operator)
PLANNERS = require("admin", "manager")
FIELD = require("admin", "manager", "technician")
ADMIN = require("admin")


class Page:
    def __init__(self, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0)] = 0) -> None:
        self.limit, self.offset = limit, offset


PageDep = Annotated[Page, Depends()]
