"""Finding "tamper-evident audit" (issue #14, item 8): each audit entry carries the hash of the
one before it, and `telegest fleet audit verify` finds an entry changed, removed or inserted.

Before: the audit log was a plain table; an entry changed in the database left no trace."""
from __future__ import annotations

import pytest
from sqlalchemy import delete, select, text, update

from fleet import audit, auditchain
from fleet.models import AuditLog


def write(session, n: int) -> list[int]:
    for i in range(n):
        audit.record(session, "user:boss@agency.fr", "update", f"visit:{i}",
                     role="manager", why="moved", detail={"from": "08:00", "to": f"09:{i:02d}",
                                                          "é": [1, 2]})
        if i % 3 == 0:
            session.commit()  # several transactions, several flushes
    session.commit()
    return list(session.scalars(select(AuditLog.id).order_by(AuditLog.id)))


def test_finding_audit_chain_an_untouched_log_verifies(session):
    write(session, 7)
    v = auditchain.verify(session)
    assert v.ok and v.checked == 7 and v.unhashed == 0


@pytest.mark.parametrize("tamper, why", [
    ("change", "changed after it was written"),
    ("remove", "does not follow"),
    ("remove_newest", "newest entries were removed"),
    ("insert", "without a hash after the chain began"),
])
def test_finding_audit_chain_tampering_is_found(session, tamper, why):
    ids = write(session, 6)
    if tamper == "change":
        session.execute(update(AuditLog).where(AuditLog.id == ids[2]).values(why="nothing"))
    elif tamper == "remove":
        session.execute(delete(AuditLog).where(AuditLog.id == ids[3]))
    elif tamper == "remove_newest":
        session.execute(delete(AuditLog).where(AuditLog.id == ids[-1]))
    else:  # a row written straight into the table, around the chain
        session.execute(text("INSERT INTO audit_log (at, who, action, target) VALUES "
                             "(CURRENT_TIMESTAMP, 'user:me', 'login', 'console')"))
    session.commit()
    v = auditchain.verify(session)
    assert not v.ok and why in v.why, v


def test_finding_audit_chain_cli_verify(database_url, session, capsys):
    from tools.cli import main

    write(session, 3)
    assert main(["fleet", "audit", "verify", "--db", database_url]) == 0
    assert "3 entries" in capsys.readouterr().out
    session.execute(update(AuditLog).where(AuditLog.id == 2).values(target="visit:99"))
    session.commit()
    assert main(["fleet", "audit", "verify", "--db", database_url]) == 1
    out = capsys.readouterr()
    assert "entry 2" in out.out + out.err
