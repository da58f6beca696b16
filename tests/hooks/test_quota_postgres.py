"""The daily quota counter on PostgreSQL, from many connections at once (as several API
processes would count): every call gets its own count, none is lost, exactly `quota` calls
are let through."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from fleet import quotas
from fleet.db import make_engine, migrate, session_factory
from fleet.keys import create_api_key
from fleet.models import ApiKey

pytestmark = pytest.mark.postgres
CONNECTIONS, CALLS, QUOTA = 8, 25, 50


def test_concurrent_connections_share_one_exact_count(pg_database_url):
    migrate(pg_database_url)
    engine = make_engine(pg_database_url)  # its pool opens a connection per thread
    sessions = session_factory(engine)
    with sessions() as s:
        create_api_key(s, "manager", "erp", daily_quota=QUOTA)
        s.commit()
        key_id = s.scalars(select(ApiKey.id)).one()
    start = threading.Barrier(CONNECTIONS)
    seen: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        with sessions() as s:
            key = s.get(ApiKey, key_id)
            s.commit()
            start.wait()
            for _ in range(CALLS):
                calls = quotas.count_call(s, key).calls
                s.commit()
                with lock:
                    seen.append(calls)

    threads = [threading.Thread(target=client) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        total = CONNECTIONS * CALLS
        assert sorted(seen) == list(range(1, total + 1))  # each call its own number
        assert sum(1 for n in seen if n <= QUOTA) == QUOTA  # exactly the quota let through
        with sessions() as s:
            assert quotas.used_today(s, s.get(ApiKey, key_id)) == total
    finally:
        engine.dispose()
