"""`telegest fleet audit verify` and `telegest fleet retention run`: the audit chain checked,
the retention job run by hand (the worker holding the fleet-duties lease runs it daily).

On the database directly, like the other `telegest fleet` commands. Exit codes: 0 the chain
holds (or the job ran), 1 the chain is broken (the first broken entry is named).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from tools.fleetops.cli import DEFAULT_DB, _session


def cmd_audit_verify(args) -> int:
    from fleet import auditchain

    with _session(args.db) as session:
        v = auditchain.verify(session)
    if v.ok:
        print(f"audit chain holds: {v.checked} entries checked"
              + (f", {v.unhashed} older ones from before the chain" if v.unhashed else ""))
        return 0
    where = f"entry {v.broken_at}" if v.broken_at is not None else "the chain's end"
    print(f"audit chain BROKEN at {where}: {v.why} ({v.checked} entries hold before it)")
    return 1


def cmd_retention_run(args) -> int:
    from fleet import retention

    with _session(args.db) as session:
        run = retention.purge(session, datetime.now(timezone.utc), who=f"cli:{args.by}")
        session.commit()
        print(json.dumps({"purged": run.purged, "audit_anchor": run.audit_anchor}))
    return 0


def add_commands(fleet, command) -> None:
    au = fleet.add_parser("audit", help="the audit log").add_subparsers(dest="sub",
                                                                       required=True)
    v = command(au, "verify", cmd_audit_verify,
                "check the audit log's hash chain: an entry changed, removed or inserted "
                "breaks it (exit 1, naming the entry)")
    v.add_argument("--db", default=DEFAULT_DB)
    rt = fleet.add_parser("retention", help="personal data retention").add_subparsers(
        dest="sub", required=True)
    r = command(rt, "run", cmd_retention_run,
                "purge now what is past its retention period (docs/privacy.md) and print what")
    r.add_argument("--db", default=DEFAULT_DB)
    r.add_argument("--by", default="operator", help="who runs it, for the audit log")
