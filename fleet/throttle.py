"""Slowing down guessing: failure counters with a lockout that ends by itself, and a cap on how
many password hashes run at once.

A console password is checked with argon2 (tens of milliseconds of CPU and 64 MiB), a phone's
with PBKDF2. A flood of bad logins would otherwise spend both cores on hashing and starve the
API and the ingest worker on the same machine. Two defences:

- `Throttle`: failures counted per key (an account, an address) in a sliding window; past the
  limit the key is locked for `lock_s`, and a locked key is refused before any hash is computed.
  The lockout ends by itself. Counters live in the process (one API process per machine is the
  deployment documented in docs/operations.md; several processes each count their own share).
- `hashing()`: a budget of `TELEGEST_HASH_RATE` hashes per second (a token bucket, burst of
  the same size) and at most `TELEGEST_HASH_CONCURRENCY` at once in the process. Past the
  budget a caller gets `Busy` at once, at no CPU cost (the routes answer 503 with Retry-After);
  a caller that cannot get a slot within `wait_s` gets `Busy` too. Measured by `telegest bench
  login-flood` (docs/benchmarks.md): with the budget, 200 bad sign-ins a second from 200
  addresses leave the ingest its rate.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator


class Busy(Exception):
    """No hashing slot became free in time: the caller should retry later."""


class Throttle:
    """Failures per key within `window_s`; `limit` of them lock the key for `lock_s`."""

    def __init__(self, limit: int, window_s: float, lock_s: float,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.limit, self.window_s, self.lock_s = limit, window_s, lock_s
        self.clock = clock
        self.max_keys = max_keys
        self._fails: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}  # key -> when the lock ends
        self._lock = threading.Lock()

    def locked_for(self, key: str) -> float:
        """Seconds left on the key's lockout, 0 when it may try."""
        with self._lock:
            until = self._locked.get(key)
            if until is None:
                return 0.0
            left = until - self.clock()
            if left <= 0:
                del self._locked[key]
                self._fails.pop(key, None)
                return 0.0
            return left

    def failure(self, key: str) -> bool:
        """Count a failure; True when this one starts a lockout (audit it once)."""
        now = self.clock()
        with self._lock:
            fails = self._fails.get(key)
            if fails is None:
                if len(self._fails) >= self.max_keys:  # bounded memory under a spray
                    self._fails.pop(next(iter(self._fails)))
                fails = self._fails[key] = deque()
            fails.append(now)
            while fails and fails[0] <= now - self.window_s:
                fails.popleft()
            if len(fails) >= self.limit and key not in self._locked:
                self._locked[key] = now + self.lock_s
                return True
            return False

    def success(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._fails.clear()
            self._locked.clear()


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, min(1000, int(os.environ.get(name, default))))
    except ValueError:
        return default


def _concurrency() -> int:
    return _env_int("TELEGEST_HASH_CONCURRENCY", 1)


class TokenBucket:
    """`rate` tokens a second, at most `rate` kept: take() is False when none is left."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.clock = rate, clock
        self.tokens, self.at = float(rate), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


_slots = threading.BoundedSemaphore(_concurrency())
BUDGET = TokenBucket(_env_int("TELEGEST_HASH_RATE", 10))


@contextmanager
def hashing(wait_s: float = 5.0) -> Iterator[None]:
    """Hold one of the process's hashing slots while a password hash is computed."""
    if not BUDGET.take():
        raise Busy("too many sign-ins at once: try again in a moment")
    if not _slots.acquire(timeout=wait_s):
        raise Busy("too many sign-ins at once: try again in a moment")
    try:
        yield
    finally:
        _slots.release()


# the limits (docs/security.md): an account or a phone ident locks after 5 failures in 15
# minutes, an address after 30; each lock lasts 15 minutes
MINUTE = 60.0
ACCOUNTS = Throttle(limit=5, window_s=15 * MINUTE, lock_s=15 * MINUTE)
ADDRESSES = Throttle(limit=30, window_s=15 * MINUTE, lock_s=15 * MINUTE)


def retry_after(seconds: float) -> str:
    return str(max(1, int(seconds + 0.999)))
