"""A leader lease in the database: which worker of a fleet does the once-per-fleet duties.

Every worker shares the ingest (MQTT shared subscriptions), but the planning pusher, the OTA
rollout driver and the offline sweep must run in one worker at a time. The one that holds the
`leases` row named DUTIES does them; the others try to take it every TTL/3 and do so once it
has expired, so a dead leader is replaced within about TTL + TTL/3.

- **One statement** acquires or renews: an INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE
  holder = me OR expires_at <= now. Two workers inserting at once, or taking over the same
  expired lease at once, are serialized by the primary key: exactly one gets its row back.
- **Whose clock**: `acquired_at` and `expires_at` are the database's (PostgreSQL's
  `clock_timestamp()`, SQLite's `'now'`), so workers on machines whose clocks disagree still
  agree on who may take over. A worker's own view of its lease uses its monotonic clock,
  counted from *before* it sent the renewal, so it ends no later than the row does.
- **Stepping down**: a worker that cannot renew (database unreachable, or slow past its busy
  timeout) stops acting as leader when its last successful renewal is older than TTL - TTL/5,
  that is TTL/5 before anyone else may take the lease (two renewals may fail first).
- A clean stop releases the lease (expires it now), so a successor takes over at its next try.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from datetime import datetime
from typing import Callable, NamedTuple

from sqlalchemy import Engine, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from fleet.models import Lease

log = logging.getLogger("telegest.lease")

DUTIES = "fleet-duties"  # the planning pusher, the rollout driver, the offline sweep
TTL_S = 15.0
_T = Lease.__table__


class Holding(NamedTuple):
    holder: str
    acquired_at: datetime
    expires_at: datetime


def db_now(dialect: str, offset_s: float = 0.0):
    """The database's clock plus `offset_s`, as SQL. On SQLite, text in the format SQLAlchemy
    stores datetimes in (naive UTC, six decimals), so that comparisons between text work."""
    if dialect == "postgresql":
        return func.clock_timestamp() + func.make_interval(0, 0, 0, 0, 0, 0, float(offset_s))
    return func.strftime("%Y-%m-%d %H:%M:%f000", "now",
                         func.printf("%+.3f seconds", float(offset_s)))


def acquire(engine: Engine, name: str, holder: str, ttl_s: float = TTL_S) -> bool:
    """Take the lease `name` for `ttl_s` seconds, or renew it if `holder` has it already;
    False when another holder's lease has not expired."""
    dialect = engine.dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_T)
    now = db_now(dialect)
    stmt = insert.values(name=name, holder=holder, acquired_at=now,
                         expires_at=db_now(dialect, ttl_s))
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[_T.c.name],
        set_={"holder": new.holder, "expires_at": new.expires_at,
              "acquired_at": case((_T.c.holder == new.holder, _T.c.acquired_at),
                                  else_=new.acquired_at)},
        where=or_(_T.c.holder == new.holder, _T.c.expires_at <= new.acquired_at),
    ).returning(_T.c.holder)
    with engine.begin() as conn:
        return conn.execute(stmt).first() is not None


def release(engine: Engine, name: str, holder: str) -> bool:
    """Expire the lease now if `holder` has it (a clean stop); False if it had not."""
    with engine.begin() as conn:
        return conn.execute(update(_T).where(_T.c.name == name, _T.c.holder == holder)
                            .values(expires_at=db_now(engine.dialect.name))).rowcount == 1


def current(engine: Engine, name: str) -> Holding | None:
    """The row as it stands (maybe expired), or None if nobody ever held the lease."""
    with engine.connect() as conn:
        row = conn.execute(select(_T.c.holder, _T.c.acquired_at, _T.c.expires_at)
                           .where(_T.c.name == name)).first()
    return Holding(*row) if row else None


class Leadership:
    """This process's claim on one lease: `renew()` every `every_s` (the `run` thread),
    `is_leader()` from any thread. Leadership changes are logged at INFO where first seen;
    `term` counts the times this process became leader (a duty restarts fresh on a new term:
    another worker led in between)."""

    def __init__(self, engine: Engine, holder: str, name: str = DUTIES, ttl_s: float = TTL_S,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.holder, self.name, self.ttl_s = engine, holder, name, ttl_s
        self.every_s = ttl_s / 3
        self.margin_s = ttl_s / 5
        self.clock = clock
        self.term = 0
        self.errors = 0
        self._valid_until = -math.inf  # monotonic; we lead while the clock is below it
        self._leading = False  # as last reported, for the log
        self._why = ""  # why the last renewal did not succeed
        self._other: str | None = None  # the other holder last seen
        self._lock = threading.Lock()

    def is_leader(self) -> bool:
        now = self.clock()
        with self._lock:
            leading = now < self._valid_until
            if leading != self._leading:
                self._leading = leading
                if leading:
                    self.term += 1
                    log.info("leader: %s holds the lease %r (ttl %.0f s)", self.holder,
                             self.name, self.ttl_s)
                else:
                    log.info("no longer leader: lease %r %s", self.name,
                             self._why or "released")
        return leading

    def renew(self) -> bool:
        """One acquire-or-renew; returns whether this process leads now."""
        sent = self.clock()
        try:
            got = acquire(self.engine, self.name, self.holder, self.ttl_s)
        except Exception as exc:  # the database is unreachable, locked, gone...
            self.errors += 1
            self._why = f"not renewed in time (last error: {type(exc).__name__}: {exc})"[:300]
            if self.errors == 1 or self._leading:
                log.warning("lease %r not renewed: %s", self.name, exc)
            return self.is_leader()
        if got:
            self.errors, self._why, self._other = 0, "", None
            self._valid_until = sent + self.ttl_s - self.margin_s
        else:
            self._valid_until = -math.inf
            self._note_other()
        return self.is_leader()

    def _note_other(self) -> None:
        try:
            held = current(self.engine, self.name)
        except Exception:
            return
        other = held.holder if held else None
        self._why = f"taken by {other}"
        if other != self._other:
            self._other = other
            log.info("follower: lease %r held by %s until %s", self.name, other,
                     held.expires_at.isoformat(timespec="seconds") if held else "?")

    def release(self) -> None:
        """Stop leading at once, then expire the lease in the database if we held it."""
        with self._lock:
            held = self._valid_until > -math.inf
            self._valid_until, self._why = -math.inf, "released"
        self.is_leader()
        if held:
            try:
                release(self.engine, self.name, self.holder)
            except Exception as exc:
                log.warning("lease %r not released (%s): it expires by itself", self.name, exc)

    def run(self, stop: threading.Event) -> None:
        """The leader thread: renew every TTL/3 until `stop`, then release."""
        while True:
            self.renew()
            # renewals failing: try again (and log the loss) when the lease would lapse
            left = self._valid_until - self.clock()
            if stop.wait(self.every_s if left <= 0 else min(self.every_s, max(0.05, left))):
                break
        self.release()
