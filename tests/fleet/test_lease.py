"""The fleet-duties lease (fleet.lease) on SQLite and PostgreSQL, and the worker's leader
thread: acquire, renew, refuse, take over after expiry, release, step down without a
database."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from fleet import lease
from fleet.db import make_engine, migrate
from fleet.models import Lease
from fleet.worker import IngestWorker
from tests.helpers import wait_until


def _expire(engine, name: str) -> None:
    """As if the holder had stopped renewing a while ago."""
    held = lease.current(engine, name)
    with engine.begin() as c:
        c.execute(update(Lease).where(Lease.name == name)
                  .values(expires_at=held.acquired_at - timedelta(seconds=1)))


def _lifecycle(engine) -> None:
    assert lease.current(engine, "duty") is None
    assert lease.acquire(engine, "duty", "a", ttl_s=30)
    first = lease.current(engine, "duty")
    assert first.holder == "a"
    assert timedelta(seconds=29) < first.expires_at - first.acquired_at < timedelta(seconds=31)
    assert lease.acquire(engine, "duty", "a", ttl_s=30)  # renew: later expiry, same start
    renewed = lease.current(engine, "duty")
    assert renewed.acquired_at == first.acquired_at and renewed.expires_at >= first.expires_at
    assert not lease.acquire(engine, "duty", "b", ttl_s=30)  # a holds it
    assert lease.current(engine, "duty") == renewed
    assert lease.acquire(engine, "other", "b", ttl_s=30)  # leases are independent

    _expire(engine, "duty")
    assert lease.acquire(engine, "duty", "b", ttl_s=30)  # expired: b takes over
    taken = lease.current(engine, "duty")
    assert taken.holder == "b" and taken.acquired_at > first.acquired_at
    assert not lease.acquire(engine, "duty", "a", ttl_s=30)  # a's renewal comes too late

    assert not lease.release(engine, "duty", "a")  # not a's to release
    assert lease.release(engine, "duty", "b")
    assert lease.acquire(engine, "duty", "a", ttl_s=30)  # released: free at once
    assert lease.current(engine, "duty").holder == "a"


def _race(url: str, holders: int = 6, rounds: int = 5) -> None:
    """Each round, `holders` engines try at the same moment; exactly one may win. Round 0
    races on the INSERT (no row yet), the others on the UPDATE of an expired row."""
    engines = [make_engine(url) for _ in range(holders)]
    try:
        for rnd in range(rounds):
            gate = threading.Barrier(holders)
            won: list[str] = []
            errors: list[BaseException] = []

            def attempt(i: int) -> None:
                try:
                    gate.wait(10)
                    if lease.acquire(engines[i], "race", f"w{i}", ttl_s=30):
                        won.append(f"w{i}")
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=attempt, args=(i,)) for i in range(holders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert errors == [] and len(won) == 1, (rnd, won, errors)
            assert lease.current(engines[0], "race").holder == won[0]
            _expire(engines[0], "race")
    finally:
        for e in engines:
            e.dispose()


def test_acquire_renew_refuse_take_over_release_on_sqlite(engine):
    _lifecycle(engine)


def test_one_winner_when_workers_race_on_sqlite(database_url):
    migrate(database_url)
    _race(database_url)


@pytest.mark.postgres
def test_lease_on_postgres(pg_database_url):
    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    try:
        _lifecycle(engine)
    finally:
        engine.dispose()
    _race(pg_database_url)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_leader_that_cannot_renew_steps_down_before_its_lease_expires(engine, caplog,
                                                                        monkeypatch):
    clock = FakeClock()
    me = lease.Leadership(engine, "me", ttl_s=15, clock=clock)
    other = lease.Leadership(engine, "other", ttl_s=15, clock=clock)
    with caplog.at_level("INFO", logger="telegest.lease"):
        assert me.renew() and me.term == 1
        assert not other.renew()
        assert "follower: lease 'fleet-duties' held by me" in caplog.text

        def unreachable(*_a, **_k):
            raise OSError("connection refused")

        with monkeypatch.context() as m:
            m.setattr(lease, "acquire", unreachable)
            clock.t += 5
            assert me.renew()  # one renewal lost: still leads on the first one
            clock.t += 5
            assert me.renew()
            clock.t += 2 - 0.01
            assert me.is_leader()
            clock.t += 0.02  # 12 s = TTL - TTL/5 after the last renewal was sent
            assert not me.is_leader()
        assert "no longer leader" in caplog.text and "connection refused" in caplog.text
        # the row still says `me` for 3 s: nobody else acts in between
        assert not other.renew()
        _expire(engine, "fleet-duties")
        assert other.renew() and other.is_leader()
        assert not me.renew() and me.term == 1  # back: refused, follows
        other.release()
        assert not other.is_leader()
        assert me.renew() and me.term == 2  # a new term: its duties start afresh


def test_two_workers_one_leader_and_a_clean_stop_hands_over(database_url, caplog):
    migrate(database_url)
    # no broker (port 1): the lease lives in the database only
    a = IngestWorker(database_url, "127.0.0.1", 1, client_id="wa", lease_ttl_s=3).start()
    b = IngestWorker(database_url, "127.0.0.1", 1, client_id="wb", lease_ttl_s=3).start()
    never = IngestWorker(database_url, "127.0.0.1", 1, client_id="wn", push=False).start()
    try:
        assert a.counters["leader"] and not b.counters["leader"]
        assert not never.counters["leader"] and never.leadership is None
        assert lease.current(a._engine, lease.DUTIES).holder.startswith("wa/")
        with caplog.at_level("INFO", logger="telegest.lease"):
            a.stop()
            assert not a.leader
            wait_until(lambda: b.leader, 5, what="b to lead once a released the lease")
        assert "no longer leader: lease 'fleet-duties' released" in caplog.text
        assert lease.current(b._engine, lease.DUTIES).holder.startswith("wb/")
    finally:
        for w in (a, b, never):
            w.stop()  # again for a: a no-op
