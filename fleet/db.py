"""Engines, sessions and schema migrations."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from fleet.private_files import create_private

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_SQLITE_BUSY_MS = 30_000


def _sqlite_file(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    return Path(u.database)


def make_engine(url: str, *, immediate: bool = False) -> Engine:
    """An engine for `url`. SQLite gets WAL, foreign keys, a busy timeout and full sync
    (an ack promises the events survive a power cut). `immediate=True` makes every SQLite
    transaction take the write lock at BEGIN (used for migrations, so two processes starting
    together do not both create the schema)."""
    path = _sqlite_file(url)
    if path is None:
        return create_engine(url, pool_pre_ping=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    # created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode
    create_private(path)
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        if immediate:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    if immediate:
        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    import fleet.auditchain  # noqa: F401  (chains every audit entry a session writes)

    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """`alembic upgrade head` on `url`, without an alembic.ini in the working directory."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


class SchemaNotReady(RuntimeError):
    """The database's schema is not the one this code needs, and this login may not change
    it (a service role without DDL rights): the owner must migrate first."""


def _state(url: str) -> tuple[set[str], str, bool]:
    """(the revisions the database is at, the login, whether that login may migrate)."""
    from alembic.migration import MigrationContext
    from sqlalchemy import text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
            user, may = conn.execute(text(
                "SELECT current_user, COALESCE((SELECT pg_has_role(current_user, tableowner, "
                "'USAGE') FROM pg_tables WHERE schemaname = current_schema() AND tablename = "
                "'alembic_version'), has_schema_privilege(current_schema(), 'CREATE'))")).one()
    finally:
        engine.dispose()
    return current, user, bool(may)


def prepare(url: str) -> None:
    """At a service's start: on SQLite, or on PostgreSQL when the login owns the schema,
    migrate as before; a login without DDL rights (docs/operations.md, "A service role without
    DDL rights") never tries DDL: at head it goes on, otherwise SchemaNotReady says who must
    migrate."""
    if make_url(url).get_backend_name() != "postgresql":
        migrate(url)
        return
    from alembic.script import ScriptDirectory

    current, user, may_migrate = _state(url)
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    if current == heads:
        return
    if may_migrate:
        migrate(url)
        return
    raise SchemaNotReady(
        f"the database schema is at {', '.join(sorted(current)) or 'nothing (empty)'}, this "
        f"fleet needs {', '.join(sorted(heads))}, and the login {user!r} may not change it: "
        "run `telegest fleet migrate --db <the owner's URL> --service-role "
        f"{user}` as the owner role, then start again")
