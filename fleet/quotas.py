"""Daily API quotas: each key may make `daily_quota` calls per UTC day (docs/api.md).

A call is counted by one atomic upsert on (key, day) that returns the new count: INSERT ... ON
CONFLICT DO UPDATE SET calls = calls + 1 RETURNING calls, the same statement on SQLite and
PostgreSQL. The database serialises it, so several API processes, or many requests at once,
share one exact count and never both take the last call. Every answer of the API carries the
X-RateLimit-* headers (`RateLimitHeaders`); past the quota the call is refused with 429 and
Retry-After, until the next UTC midnight.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet.models import ApiKey, ApiKeyUsage
from fleet.types import utcnow

DEFAULT_QUOTA = 10_000
STATE_KEY = "rate_limit"  # where the current call's Usage waits for RateLimitHeaders


@dataclass(frozen=True)
class Usage:
    limit: int
    calls: int  # this call included
    reset_at: datetime  # the next UTC midnight

    @property
    def remaining(self) -> int:
        return max(self.limit - self.calls, 0)

    @property
    def exceeded(self) -> bool:
        return self.calls > self.limit

    def retry_after(self, now: datetime) -> int:
        return max(int((self.reset_at - now).total_seconds() + 0.999), 1)

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(int(self.reset_at.timestamp()))}


def count_call(session: Session, key: ApiKey, now: datetime | None = None) -> Usage:
    """Count one call of `key` today (UTC) and return where it stands; the caller commits."""
    now = now or utcnow()
    day = now.astimezone(timezone.utc).date()
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql"
              else sqlite.insert)
    stmt = insert(ApiKeyUsage).values(api_key_id=key.id, day=day, calls=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ApiKeyUsage.api_key_id, ApiKeyUsage.day],
        set_={"calls": ApiKeyUsage.__table__.c.calls + 1}).returning(ApiKeyUsage.calls)
    calls = session.execute(stmt).scalar_one()
    reset = datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc)
    return Usage(key.daily_quota, calls, reset)


def used_today(session: Session, key: ApiKey, now: datetime | None = None) -> int:
    day = (now or utcnow()).astimezone(timezone.utc).date()
    row = session.get(ApiKeyUsage, (key.id, day))
    return row.calls if row else 0


class RateLimitHeaders:
    """ASGI middleware: the X-RateLimit-* headers of the call's Usage (set by the API's key
    check) on its answer, whatever produced it (a route, an error, a stream)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            usage = scope.get("state", {}).get(STATE_KEY)
            if message["type"] == "http.response.start" and usage is not None:
                taken = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in usage.headers().items()
                         if k.lower().encode() not in taken]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
