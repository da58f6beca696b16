"""Daily API quotas: each key may make `daily_quota` calls per UTC day (docs/api.md).

A call is counted by one atomic upsert on (key, day) that returns the new count: INSERT ... ON
CONFLICT DO UPDATE SET calls = calls + 1 RETURNING calls, the same statement on SQLite and
PostgreSQL. The database serialises it, so several API processes, or many requests at once,
share one exact count and never both take the last call. Every answer of the API carries the
X-RateLimit-* headers (`RateLimitHeaders`); past the quota the call is refused with 429 and
Retry-After, until the next UTC midnight.

Where `TELEGEST_QUOTA_REDIS_URL` is set, the count is kept in Redis instead (`RedisCounter`:
INCR of one key per API key and UTC day, which expires a day after that day ends), so a call
costs no database write. Redis is atomic too, so the count stays exact across processes. If
Redis does not answer, the call is counted in the database (logged, counted in
`RedisCounter.fallbacks`): the API keeps answering, and the day's count is then split between
the two (the quota may be passed by what the database counted meanwhile).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet.models import ApiKey, ApiKeyUsage
from fleet.types import utcnow

log = logging.getLogger("telegest.quotas")

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


def _day_and_reset(now: datetime) -> tuple:
    day = now.astimezone(timezone.utc).date()
    return day, datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc)


def count_call(session: Session, key: ApiKey, now: datetime | None = None,
               counter: "RedisCounter | None" = None) -> Usage:
    """Count one call of `key` today (UTC) and return where it stands; the caller commits.
    With a `counter` (Redis), there, unless Redis fails."""
    now = now or utcnow()
    if counter is not None:
        usage = counter.count(key, now)
        if usage is not None:
            return usage
    day, reset = _day_and_reset(now)
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql"
              else sqlite.insert)
    stmt = insert(ApiKeyUsage).values(api_key_id=key.id, day=day, calls=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ApiKeyUsage.api_key_id, ApiKeyUsage.day],
        set_={"calls": ApiKeyUsage.__table__.c.calls + 1}).returning(ApiKeyUsage.calls)
    calls = session.execute(stmt).scalar_one()
    return Usage(key.daily_quota, calls, reset)


def used_today(session: Session, key: ApiKey, now: datetime | None = None,
               counter: "RedisCounter | None" = None) -> int:
    """Today's calls of `key`: the database's count, plus Redis's where it counts."""
    now = now or utcnow()
    day = now.astimezone(timezone.utc).date()
    row = session.get(ApiKeyUsage, (key.id, day))
    return (row.calls if row else 0) + (counter.used(key, now) if counter else 0)


class RedisCounter:
    """The daily counts in Redis (`url` redis://, rediss:// or unix://): one key
    `<prefix><api key id>:<UTC day>` a day, INCR then EXPIREAT in one MULTI/EXEC."""

    def __init__(self, url: str, prefix: str = "telegest:quota:", timeout: float = 0.5) -> None:
        from fleet.config import SettingsError, check_redis_url

        check_redis_url(url)
        try:
            import redis  # the optional dependency
        except ImportError:
            raise SettingsError("TELEGEST_QUOTA_REDIS_URL is set but the redis package is "
                                "not installed: pip install 'telegest[redis]'") from None

        self.prefix = prefix
        self.fallbacks = 0
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout)
        self._errors = (redis.RedisError, OSError)

    def _key(self, key: ApiKey, day) -> str:
        return f"{self.prefix}{key.id}:{day.isoformat()}"

    def count(self, key: ApiKey, now: datetime) -> Usage | None:
        """The new count, or None when Redis failed (the caller counts in the database)."""
        day, reset = _day_and_reset(now)
        name = self._key(key, day)
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(name)
            pipe.expireat(name, int(reset.timestamp()) + 86400)
            calls, _ = pipe.execute()
        except self._errors as e:
            self.fallbacks += 1
            log.warning("quota: Redis did not answer (%s); counting in the database", e)
            return None
        return Usage(key.daily_quota, int(calls), reset)

    def used(self, key: ApiKey, now: datetime) -> int:
        try:
            raw = self._redis.get(self._key(key, now.astimezone(timezone.utc).date()))
        except self._errors:
            return 0
        return int(raw or 0)

    def close(self) -> None:
        self._redis.close()


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
