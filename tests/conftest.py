"""Shared fixtures: a database URL per test, a real mosquitto per test.

SQLite is the default; tests marked `postgres` run against TELEGEST_TEST_DATABASE_URL and
fail (never skip) when it is not set.
"""
from __future__ import annotations

import os

import pytest


@pytest.fixture
def database_url(tmp_path) -> str:
    """A fresh, empty SQLite database file (no schema yet)."""
    return f"sqlite:///{tmp_path / 'telegest.db'}"


@pytest.fixture
def pg_database_url() -> str:
    """The PostgreSQL test database, emptied (schema public dropped and recreated)."""
    url = os.environ.get("TELEGEST_TEST_DATABASE_URL")
    if not url:
        pytest.fail("TELEGEST_TEST_DATABASE_URL is not set: postgres tests need a server")
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url
