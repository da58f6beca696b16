"""Finding "a service role without DDL rights" (issue #14, item 8): on PostgreSQL the API and the
workers log in as a role that may read and write the rows and append to the audit log, never
change the schema nor rewrite the audit trail; the owner role migrates
(`telegest fleet migrate --db OWNER --service-role ROLE`). docs/operations.md.

Each test creates an owner and a service role of its own (random names: the cluster's roles
are shared), and drops them and what they own at the end.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from fleet import audit, auditchain, retention
from fleet.db import SchemaNotReady, make_engine, migrate, session_factory
from fleet.models import AuditLog, RetentionRun
from tests.helpers import WorkerProcess, find_device_with_visit_now, reader_for, \
    stored_seqs, telegest, wait_until
from tools.up import seed

pytestmark = pytest.mark.postgres
DENIED = "42501"  # insufficient_privilege


@pytest.fixture
def roles(pg_database_url):
    """(owner URL, service URL, service role name): two login roles, the owner may create in
    the schema, the service role nothing yet."""
    tag = secrets.token_hex(4)
    owner, service = f"tg_owner_{tag}", f"tg_service_{tag}"
    admin = sa.create_engine(pg_database_url)
    with admin.begin() as c:
        c.exec_driver_sql(f"CREATE ROLE {owner} LOGIN PASSWORD 'owner-{tag}'")
        c.exec_driver_sql(f"CREATE ROLE {service} LOGIN PASSWORD 'service-{tag}'")
        # as `CREATE DATABASE … OWNER` would (PostgreSQL 15: public is the database owner's)
        c.exec_driver_sql(f"ALTER SCHEMA public OWNER TO {owner}")
    url = make_url(pg_database_url)
    as_owner = url.set(username=owner, password=f"owner-{tag}")
    as_service = url.set(username=service, password=f"service-{tag}")
    try:
        yield (as_owner.render_as_string(hide_password=False),
               as_service.render_as_string(hide_password=False), service)
    finally:
        with admin.begin() as c:
            c.exec_driver_sql("ALTER SCHEMA public OWNER TO CURRENT_USER")
            for role in (service, owner):
                c.exec_driver_sql(f"DROP OWNED BY {role} CASCADE")
                c.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def _denied(engine, sql: str) -> str:
    """The permission error `sql` gets (the transaction is rolled back)."""
    with engine.connect() as c:
        with pytest.raises(ProgrammingError) as e:
            c.exec_driver_sql(sql)
        c.rollback()
    assert e.value.orig.sqlstate == DENIED, (sql, e.value)
    return str(e.value.orig)


def _audit_count(engine) -> int:
    with engine.connect() as c:
        return c.scalar(select(func.count()).select_from(AuditLog))


def test_finding_service_role_runs_api_and_ingest_without_ddl(roles, mosquitto, tmp_path):
    owner_url, service_url, service = roles
    done = telegest("fleet", "migrate", "--db", owner_url, "--service-role", service)
    assert done.returncode == 0, done.stderr
    assert f"service role {service}" in done.stdout and "service-" not in done.stdout
    org = seed(owner_url)["organisation_id"]
    engine = make_engine(service_url)
    before = _audit_count(engine)

    # ingest: a reader taps, the worker (logged in as the service role) stores and acks
    ident, _, (_, badge) = find_device_with_visit_now(service_url)
    worker = WorkerProcess(service_url, mosquitto.host, mosquitto.port, tmp_path / "w.log")
    reader = reader_for(service_url, mosquitto, tmp_path, ident)
    try:
        worker.start().wait_ready()
        reader.start()
        assert reader.tap(badge) == "in"
        assert reader.wait_drained(60), worker.log()[-2000:]
        assert stored_seqs(service_url, ident) == [1]
        # the leader's retention run at start: a run and an audit entry, appended
        wait_until(lambda: _audit_count(engine) > before, 30, what="the retention run")
    finally:
        reader.stop()
        worker.stop()
    assert "permission denied" not in worker.log()

    # the API, logged in as the service role: an audited change
    from fleet.api.app import create_app
    from fleet.config import Settings
    from fleet.keys import create_api_key

    S = session_factory(engine)
    with S() as s:
        key = create_api_key(s, "admin", "service-role test")
        s.commit()
    made = telegest("fleet", "apikey", "--db", service_url, "--label", "as the service")
    assert made.returncode == 0 and made.stdout.strip(), made.stderr  # the CLI as the role
    with TestClient(create_app(Settings(database_url=service_url))) as api:
        api.headers["Authorization"] = f"Bearer {key}"
        r = api.patch("/api/v1/alert-settings", params={"organisation_id": org},
                      json={"late_after_min": 7})
        assert r.status_code == 200, r.text
    with S() as s:
        last = s.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
        assert last.action == "settings" and "late_after_min" in str(last.detail), last
        assert s.scalar(select(func.count()).select_from(RetentionRun)) >= 1
        assert auditchain.verify(s).ok

    # no schema change, no rewriting of the audit trail
    assert "must be owner" in _denied(engine, "DROP TABLE clock_events")
    assert "must be owner" in _denied(engine, "ALTER TABLE devices ADD COLUMN x integer")
    _denied(engine, "TRUNCATE audit_log")
    _denied(engine, "CREATE TABLE mine (x integer)")
    _denied(engine, "UPDATE audit_log SET why = 'rewritten'")
    _denied(engine, "DELETE FROM audit_log")
    _denied(engine, "UPDATE retention_runs SET audit_anchor = NULL")
    _denied(engine, "UPDATE alembic_version SET version_num = '0001'")

    # a table a later migration creates (as the owner) is the service's by default privileges
    owner = make_engine(owner_url)
    with owner.begin() as c:
        c.exec_driver_sql("CREATE TABLE later_table (id serial PRIMARY KEY, x integer)")
    owner.dispose()
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO later_table (x) VALUES (1)")
        assert c.exec_driver_sql("SELECT count(*) FROM later_table").scalar() == 1
    _denied(engine, "DROP TABLE later_table")
    engine.dispose()


def test_finding_service_role_purges_old_audit_entries_only_through_the_owners_function(roles):
    owner_url, service_url, service = roles
    migrate(owner_url)
    from fleet.service_role import grant

    grant(owner_url, service)
    grant(owner_url, service)  # after each migration, again: idempotent
    owner = make_engine(owner_url)
    now = datetime.now(timezone.utc)
    with session_factory(owner)() as s:
        for days in (2000, 1990, 10, 1):
            e = audit.record(s, "cli:test", "note", "fleet", detail={"days": days})
            e.at = now - timedelta(days=days)
            s.flush()
        s.commit()
    owner.dispose()

    engine = make_engine(service_url)
    _denied(engine, "DELETE FROM audit_log")
    _denied(engine, "TRUNCATE audit_log")
    with session_factory(engine)() as s:
        # the job's clock ten years ahead: its cutoff would take every entry, the owner's
        # function takes only those older than 30 days by the database's clock
        run = retention.purge(s, now + timedelta(days=3650))
        s.commit()
        assert run.purged["audit"] == 2 and run.audit_anchor
        kept = sorted(e.detail["days"] for e in s.scalars(select(AuditLog)) if e.detail and
                      "days" in e.detail)
        assert kept == [1, 10]
        assert auditchain.verify(s).ok
    engine.dispose()


def test_finding_service_role_never_tries_ddl_when_the_schema_is_behind(roles, tmp_path):
    owner_url, service_url, service = roles
    # an empty database: the service role may not create the schema, and says who must
    with pytest.raises(SchemaNotReady, match="telegest fleet migrate"):
        from fleet.api.app import create_app
        from fleet.config import Settings

        create_app(Settings(database_url=service_url))
    migrate(owner_url, "0009")  # then a new release's code, one migration ahead
    from fleet.service_role import grant

    grant(owner_url, service)
    with pytest.raises(SchemaNotReady) as e:
        create_app(Settings(database_url=service_url))
    assert "at 0009" in str(e.value) and f"--service-role {service}" in str(e.value)
    api = telegest("fleet", "api", "--db", service_url, "--port", "1")
    worker = telegest("fleet", "worker", "--db", service_url, "--broker", "127.0.0.1:1")
    assert api.returncode == 2 and "telegest fleet migrate" in api.stderr, api.stderr
    assert "Traceback" not in api.stderr
    assert worker.returncode == 2 and "telegest fleet migrate" in worker.stderr + worker.stdout
    engine = make_engine(owner_url)
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0009"
    engine.dispose()
    # the owner migrates and grants: the service starts
    done = telegest("fleet", "migrate", "--db", owner_url, "--service-role", service)
    assert done.returncode == 0, done.stderr
    create_app(Settings(database_url=service_url)).state.engine.dispose()


def test_finding_service_role_refusals_are_clear(roles, database_url):
    owner_url, _, service = roles
    missing = telegest("fleet", "migrate", "--db", owner_url, "--service-role", "tg_nobody_x1")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    itself = telegest("fleet", "migrate", "--db", owner_url, "--service-role",
                      make_url(owner_url).username)
    assert itself.returncode == 2 and "role of its own" in itself.stderr
    sqlite = telegest("fleet", "migrate", "--db", database_url, "--service-role", service)
    assert sqlite.returncode == 2 and "PostgreSQL" in sqlite.stderr
