"""Shared fixtures: a database URL per test, a real mosquitto per test.

SQLite is the default; tests marked `postgres` run against TELEGEST_TEST_DATABASE_URL and
fail (never skip) when it is not set.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import READY_S, WorkerProcess, worker_database_url
from tools.broker import Broker, free_port, wait_port
from tools.up import seed


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Sign-in failure counters are per process: each test starts with none."""
    from fleet import throttle

    throttle.ACCOUNTS.clear()
    throttle.ADDRESSES.clear()
    throttle.BUDGET.tokens = throttle.BUDGET.rate
    yield


@pytest.fixture
def throttle_clock(monkeypatch):
    """The sign-in throttles' clock, moved by hand (fleet.throttle)."""
    from fleet import throttle
    from tests.helpers import FakeClock

    c = FakeClock()
    monkeypatch.setattr(throttle.ACCOUNTS, "clock", c)
    monkeypatch.setattr(throttle.ADDRESSES, "clock", c)
    return c


@pytest.fixture
def database_url(tmp_path) -> str:
    """A fresh, empty SQLite database file (no schema yet)."""
    return f"sqlite:///{tmp_path / 'telegest.db'}"


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory) -> Path:
    """One SQLite database migrated to the latest schema, made once per test process: a
    test's database starts as a copy of it (migrating anew was most of a small test's time)."""
    import sqlite3

    from fleet.db import migrate

    path = tmp_path_factory.mktemp("migrated") / "telegest.db"
    migrate(f"sqlite:///{path}")
    c = sqlite3.connect(path)
    try:  # everything in the file itself, nothing left in a -wal beside it
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        c.close()
    return path


def migrated(database_url: str, template: Path) -> None:
    """`database_url` at the latest schema: a copy of `template` (0600, as fleet.db makes
    SQLite files) when it is a SQLite file not made yet, otherwise migrated."""
    from sqlalchemy.engine import make_url

    from fleet.db import migrate
    from fleet.private_files import create_private

    u = make_url(database_url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:") \
            or Path(u.database).exists():
        migrate(database_url)
        return
    create_private(u.database)
    shutil.copyfile(template, u.database)


@pytest.fixture
def engine(database_url, _migrated_sqlite):
    """An engine on the fresh SQLite database, migrated to the latest schema."""
    from fleet.db import make_engine

    migrated(database_url, _migrated_sqlite)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    from fleet.db import session_factory

    with session_factory(engine)() as s:
        yield s


@pytest.fixture(scope="session")
def _pg_worker_url() -> str | None:
    """TELEGEST_TEST_DATABASE_URL, or under pytest-xdist this worker's own database beside it
    (`test_gw0`, ..., created when absent: tests.helpers.worker_database_url)."""
    url = os.environ.get("TELEGEST_TEST_DATABASE_URL")
    return worker_database_url(url) if url else None


@pytest.fixture
def pg_database_url(_pg_worker_url) -> str:
    """The PostgreSQL test database (this xdist worker's), emptied (schema public dropped and
    recreated)."""
    url = _pg_worker_url
    if not url:
        pytest.fail("TELEGEST_TEST_DATABASE_URL is not set: postgres tests need a server")
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


# -- a real broker, the worker as a process, the demo agency, the API ---------------------------

@pytest.fixture
def mosquitto(tmp_path):
    broker = Broker("mosquitto", workdir=tmp_path / "broker", purpose="a test").start()
    yield broker
    broker.stop()


@pytest.fixture
def demo(database_url, _migrated_sqlite):
    """(database url, what seed_demo returned) for the demo agency with today's planning."""
    migrated(database_url, _migrated_sqlite)
    return database_url, seed(database_url)


@pytest.fixture
def worker(demo, mosquitto, tmp_path):
    w = WorkerProcess(demo[0], mosquitto.host, mosquitto.port, tmp_path / "worker.log")
    try:  # stopped even when it never gets ready: no worker left running after the test
        w.start().wait_ready()
        yield w
    finally:
        w.stop()


@pytest.fixture
def api(demo):
    """An authenticated client of the REST API on the demo database."""
    from fastapi.testclient import TestClient

    from fleet.api.app import create_app
    from fleet.config import Settings
    from fleet.db import make_engine, session_factory
    from fleet.keys import create_api_key

    engine = make_engine(demo[0])
    with session_factory(engine)() as session:
        key = create_api_key(session, "admin", "e2e")
        session.commit()
    engine.dispose()
    with TestClient(create_app(Settings(database_url=demo[0]))) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


@pytest.fixture
def api_server(demo):
    """The REST API and console on a free port, served by uvicorn as `telegest fleet api`
    serves them (same app, same settings from the environment), in a thread of the test's
    process: a process of its own cost 2 s of imports per test, 48 browser tests. The command
    itself is run by the e2e tests (tests/e2e/conftest.py `fleet_api`, `telegest up`)."""
    import dataclasses
    import threading

    import uvicorn

    from fleet.api.app import create_app
    from fleet.config import Settings

    port = free_port()
    settings = Settings(database_url=demo[0])
    if not settings.public_url_configured:  # as the command does
        settings = dataclasses.replace(settings, public_url=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    try:
        if not wait_port("127.0.0.1", port, READY_S) or not thread.is_alive():
            raise AssertionError(f"the API did not start on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# -- CI gate: every marker collects tests, nothing is skipped (tests/gate.py, xdist-aware) ------
from tests.gate import (  # noqa: E402,F401 (hooks: pytest finds them by name in this module)
    pytest_collection_modifyitems, pytest_runtest_logreport,
    pytest_sessionfinish, pytest_terminal_summary, pytest_testnodedown)
