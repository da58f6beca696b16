"""The PostgreSQL service role: what the API and the workers log in as, without DDL rights.

The owner role (who created the schema) runs the migrations, then `grant` gives the service role
SELECT, INSERT, UPDATE and DELETE on the tables and USAGE on the sequences, and the same by
default on what later migrations create (`ALTER DEFAULT PRIVILEGES`). Never DROP, ALTER,
TRUNCATE or CREATE. The audit trail is append-only for it: `audit_log` and `retention_runs`
SELECT and INSERT only, the chain's head SELECT and UPDATE only, `alembic_version` SELECT only.

The retention job still purges old audit entries: it calls `telegest_purge_audit(cutoff)`, a
SECURITY DEFINER function of the owner that never deletes an entry younger than the shortest
`audit_keep_days` allowed (30 days, by the database's clock, whatever cutoff it is given), so
the service role cannot empty the log through it.
docs/operations.md, "A service role without DDL rights".
"""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet.agency_settings import LIMIT_FIELDS
from fleet.db import make_engine

AUDIT_MIN_DAYS = LIMIT_FIELDS["audit_keep_days"][0]
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# table: the privileges taken back from what every table gets
APPEND_ONLY = {"audit_log": "UPDATE, DELETE", "retention_runs": "UPDATE, DELETE",
               "audit_chain_head": "INSERT, DELETE", "alembic_version": "INSERT, UPDATE, DELETE"}


class ServiceRoleError(ValueError):
    """The service role cannot be granted as asked; the message says why and what to do."""


def _purge_function(schema: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION telegest_purge_audit(cutoff timestamptz)
RETURNS TABLE (purged bigint, anchor text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $fn$
DECLARE first_kept integer; newest_old integer;
BEGIN
  -- never an entry younger than the shortest period an agency may set, by the database's clock
  cutoff := least(cutoff, now() - interval '{AUDIT_MIN_DAYS} days');
  SELECT min(a.id) INTO first_kept FROM audit_log a WHERE a.at >= cutoff;
  SELECT max(a.id) INTO newest_old FROM audit_log a
   WHERE a.at < cutoff AND (first_kept IS NULL OR a.id < first_kept);
  purged := 0;
  IF newest_old IS NOT NULL THEN
    IF first_kept IS NOT NULL THEN
      SELECT a.prev_hash INTO anchor FROM audit_log a WHERE a.id = first_kept;
    ELSE
      SELECT a.hash INTO anchor FROM audit_log a WHERE a.id = newest_old;
    END IF;
    DELETE FROM audit_log a WHERE a.id <= newest_old;
    GET DIAGNOSTICS purged = ROW_COUNT;
  END IF;
  RETURN NEXT;
END $fn$"""


def grant(owner_url: str, role: str) -> None:
    """As the owner (`owner_url`), give `role` the service's rights on the migrated schema;
    run again after every migration (`telegest fleet migrate --service-role`), it is
    idempotent. The role itself is created beforehand by whoever may create roles."""
    if not _NAME.match(role):
        raise ServiceRoleError(f"service role {role!r}: lower-case letters, digits and _ only")
    engine = make_engine(owner_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        raise ServiceRoleError("--service-role is for PostgreSQL (SQLite has no roles)")
    try:
        with engine.begin() as conn:
            me, schema = conn.execute(text("SELECT current_user, current_schema()")).one()
            found = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"),
                                 {"r": role}).first()
            if found is None:
                raise ServiceRoleError(
                    f"role {role!r} does not exist: create it first, as a role that may "
                    f"(CREATE ROLE {role} LOGIN PASSWORD '…'), then run this again")
            if found[0] or role == me:
                raise ServiceRoleError(f"role {role!r} is a superuser or the owner itself: "
                                       "the service role must be a role of its own")
            tables = set(conn.scalars(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")))
            if not conn.scalar(text("SELECT pg_has_role(current_user, nspowner, 'USAGE') "
                                    "FROM pg_namespace WHERE nspname = current_schema()")):
                raise ServiceRoleError(
                    f"{me!r} does not own the schema {schema!r}, so it cannot grant on it: "
                    f"create the database with OWNER {me}, or ALTER SCHEMA {schema} OWNER TO "
                    f"{me} (as a superuser), then run this again")
            q = conn.dialect.identifier_preparer.quote
            r, s = q(role), q(schema)
            for sql in (
                    f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
                    f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
                    f"REVOKE CREATE ON SCHEMA {s} FROM PUBLIC",  # PostgreSQL < 15 gave it
                    f"GRANT USAGE ON SCHEMA {s} TO {r}",
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
                    f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
                    *(f"REVOKE {what} ON {q(table)} FROM {r}"
                      for table, what in APPEND_ONLY.items() if table in tables),
                    f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, "
                    f"DELETE ON TABLES TO {r}",
                    f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE ON SEQUENCES TO {r}",
                    _purge_function(s),
                    "REVOKE ALL ON FUNCTION telegest_purge_audit(timestamptz) FROM PUBLIC",
                    f"GRANT EXECUTE ON FUNCTION telegest_purge_audit(timestamptz) TO {r}"):
                conn.exec_driver_sql(sql.replace("%", "%%"))  # no parameters: % is literal
    finally:
        engine.dispose()


def may_delete_audit(session: Session) -> bool:
    """False for the service role on PostgreSQL: it purges through telegest_purge_audit."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(text("SELECT has_table_privilege('audit_log', 'DELETE')")))


def purge_audit(session: Session, cutoff: datetime) -> tuple[int, str | None]:
    """(entries purged, the hash the chain then starts from) through the owner's function."""
    purged, anchor = session.execute(text(
        "SELECT purged, anchor FROM telegest_purge_audit(:cutoff)"), {"cutoff": cutoff}).one()
    return int(purged), anchor
