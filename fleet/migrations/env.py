"""Alembic environment: online migrations only, on the engine fleet.db builds."""
from __future__ import annotations

from alembic import context
from sqlalchemy import text

from fleet.db import make_engine
from fleet.models import Base

config = context.config
target_metadata = Base.metadata
_LOCK_ID = 0x7E1E6E57  # PostgreSQL advisory lock: one migrator at a time


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = make_engine(url, immediate=True)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata,
                              render_as_batch=connection.dialect.name == "sqlite",
                              compare_type=True)
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
run_migrations_online()
