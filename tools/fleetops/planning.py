"""`telegest fleet series add|extend` and `telegest fleet visit reassign`: the planning layer
(fleet.visit_series, fleet.week, fleet.visits) from the command line, on the database directly
like the other `telegest fleet` commands. A refusal is one clear message (exit 2), nothing
changed.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone

from tools.errors import TelegestError
from tools.fleetops.cli import DEFAULT_DB, _session


@contextmanager
def _planning(args) -> Iterator:
    from fleet.directory import PlanningError

    if not args.by.strip():
        raise TelegestError("--by: say who you are (it goes to the audit log)")
    with _session(args.db) as session:
        try:
            yield session
            session.commit()
        except PlanningError as e:
            session.rollback()
            raise TelegestError(f"{e.message} [{e.status}]; nothing was changed") from None


def _org(session, model, ident: int, what: str):
    from fleet.models import Organisation

    obj = session.get(model, ident)
    if obj is None:
        raise TelegestError(f"no {what} {ident}")
    return session.get(Organisation, obj.organisation_id)


def cmd_series_add(args) -> int:
    from fleet import visit_series
    from fleet.models import Client

    with _planning(args) as session:
        org = _org(session, Client, args.client, "client")
        series = visit_series.create(
            session, org, client_id=args.client, caregiver_id=args.caregiver,
            service_id=args.service, rrule_text=args.rrule, starts_on=args.first,
            ends_on=args.last, at=args.at, duration_min=args.minutes,
            today=visit_series.today_in(session, org), who=f"cli:{args.by.strip()}")
        session.flush()
        print(json.dumps({"series": series.id, "rrule": series.rrule,
                          "expanded_until": str(series.expanded_until)}))
    return 0


def cmd_series_extend(args) -> int:
    from fleet import visit_series

    with _session(args.db) as session:
        made = visit_series.extend_all(session, datetime.now(timezone.utc))
        session.commit()
    print(json.dumps({"visits_made": made}))
    return 0


def cmd_visit_reassign(args) -> int:
    from sqlalchemy import select

    from fleet import week
    from fleet.models import Visit

    with _planning(args) as session:
        chosen = list(session.scalars(select(Visit).where(Visit.id.in_(args.visits))))
        missing = sorted(set(args.visits) - {v.id for v in chosen})
        if missing:
            raise TelegestError(f"no visit {', '.join(map(str, missing))}")
        org = _org(session, Visit, chosen[0].id, "visit")
        accepted = week.reassign(session, org, chosen, args.to, who=f"cli:{args.by.strip()}",
                                 confirm=args.confirm)
        print(json.dumps({"reassigned": [v.id for v in chosen], "caregiver_id": args.to,
                          "conflicts_accepted": {str(k): v for k, v in accepted.items()}}))
    return 0


def _ids(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: visit ids separated by commas") from None
    if not ids:
        raise argparse.ArgumentTypeError("give at least one visit id")
    return ids


def add_commands(fleet, command) -> None:
    se = fleet.add_parser("series", help="recurring visits").add_subparsers(dest="sub",
                                                                          required=True)
    a = command(se, "add", cmd_series_add,
                "a recurring visit (RFC 5545 RRULE), its visits made 8 weeks ahead")
    a.add_argument("--db", default=DEFAULT_DB)
    a.add_argument("--client", type=int, required=True)
    a.add_argument("--caregiver", type=int, required=True)
    a.add_argument("--service", type=int, default=None)
    a.add_argument("--rrule", required=True, help="e.g. FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
    a.add_argument("--first", type=date.fromisoformat, required=True, help="YYYY-MM-DD")
    a.add_argument("--last", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
    a.add_argument("--at", required=True, help="local time, HH:MM")
    a.add_argument("--minutes", type=int, required=True)
    a.add_argument("--by", required=True, help="who you are, for the audit log")
    e = command(se, "extend", cmd_series_extend,
                "make the series' visits up to the horizon now (the worker does it daily)")
    e.add_argument("--db", default=DEFAULT_DB)
    vi = fleet.add_parser("visit", help="planned visits").add_subparsers(dest="sub",
                                                                       required=True)
    r = command(vi, "reassign", cmd_visit_reassign,
                "give visits to another caregiver; her conflicts refuse it unless --confirm")
    r.add_argument("--db", default=DEFAULT_DB)
    r.add_argument("--visits", type=_ids, required=True, help="visit ids: 12,13,14")
    r.add_argument("--to", type=int, required=True, help="the caregiver's id")
    r.add_argument("--confirm", action="store_true", help="reassign even with conflicts")
    r.add_argument("--by", required=True, help="who you are, for the audit log")
