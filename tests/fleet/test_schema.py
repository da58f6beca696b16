"""Models and migrations agree; UTC times round-trip."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from fleet.config import Settings, SettingsError
from fleet.db import make_engine, migrate
from fleet.models import Base, Organisation


def schema_diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_migration_matches_models_on_sqlite(database_url):
    migrate(database_url)
    migrate(database_url)  # twice: a no-op
    assert schema_diff(database_url) == []


def test_sqlite_pragmas(engine):
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_times_are_aware_utc(session):
    paris = timezone(timedelta(hours=1))
    org = Organisation(name="x", created_at=datetime(2026, 11, 23, 10, 0, tzinfo=paris))
    session.add(org)
    session.commit()
    session.expire_all()
    got = session.get(Organisation, org.id).created_at
    assert got == datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc) and got.utcoffset() == \
        timedelta(0)
    session.add(Organisation(name="y", created_at=datetime(2026, 1, 1)))
    with pytest.raises(Exception, match="naive datetime"):
        session.commit()


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("TELEGEST_MQTT_PORT", "1884")
    monkeypatch.delenv("TELEGEST_DATABASE_URL", raising=False)
    s = Settings()
    assert s.mqtt_port == 1884 and s.database_url == "sqlite:///var/telegest.db"
    assert s.mqtt_password is None
    monkeypatch.setenv("TELEGEST_MQTT_PORT", "99999")
    with pytest.raises(SettingsError, match="TELEGEST_MQTT_PORT"):
        Settings()
    monkeypatch.delenv("TELEGEST_MQTT_PORT")
    with pytest.raises(SettingsError, match="well-known"):
        Settings(mqtt_username="fleet", mqtt_password="changeme")
    with pytest.raises(SettingsError):
        Settings(database_url="mysql://x/y")
