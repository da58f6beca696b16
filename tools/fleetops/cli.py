"""`telegest fleet device list|show|provision|block|unblock|retire|audit|maintenance-code`.

Thin handlers over fleet.lifecycle and fleet.audit, on the database directly (no HTTP): the
same data functions as the API, so the same transitions, checks and audit entries. The person
is named with `--by` (written to the audit log as `cli:<name>`, role admin: whoever holds the
database URL holds the fleet). The broker is reached with TELEGEST_DYNSEC_USERNAME /
_PASSWORD and TELEGEST_MQTT_HOST / _PORT; without them the broker is taken as anonymous.
"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from tools.errors import TelegestError

DEFAULT_DB = os.environ.get("TELEGEST_DATABASE_URL", "sqlite:///var/telegest.db")


@contextmanager
def _session(db: str) -> Iterator:
    from fleet.db import make_engine, prepare, session_factory

    prepare(db)
    engine = make_engine(db)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


@contextmanager
def _acting(args) -> Iterator[tuple]:
    """(session, actor, broker); lifecycle and broker refusals become one TelegestError."""
    from fleet.brokerauth import BrokerAuthError, control_from_env
    from fleet.lifecycle import Actor, LifecycleError

    if not args.by.strip():
        raise TelegestError("--by: say who you are (it goes to the audit log)")
    try:
        broker = control_from_env()
    except BrokerAuthError as e:
        raise TelegestError(str(e)) from None
    try:
        with _session(args.db) as session:
            try:
                yield session, Actor(f"cli:{args.by.strip()}", "admin"), broker
                session.commit()
            except LifecycleError as e:
                session.commit()  # keep what the refusal recorded
                raise TelegestError(f"{e.message} [{e.status}]") from None
            except BrokerAuthError as e:
                session.rollback()
                raise TelegestError(f"{e}; nothing was changed") from None
    finally:
        close = getattr(broker, "close", None)
        if close:
            close()


def _device_row(d) -> dict:
    return {"ident": d.ident, "kind": d.kind, "status": d.status, "acked_seq": d.acked_seq,
            "last_seen": d.last_seen.isoformat() if d.last_seen else None,
            "status_reason": d.status_reason, "fw": d.fw_version}


def _print(obj, as_json: bool) -> None:
    print(json.dumps(obj, indent=1, default=str) if as_json else obj)


# -- handlers ----------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from sqlalchemy import select

    from fleet.models import Device

    with _session(args.db) as session:
        stmt = select(Device).order_by(Device.ident)
        if args.status:
            stmt = stmt.where(Device.status == args.status)
        rows = [_device_row(d) for d in session.scalars(stmt)]
    if args.json:
        _print(rows, True)
        return 0
    for r in rows:
        print(f"{r['ident']:<24} {r['kind']:<7} {r['status']:<12} seq {r['acked_seq']:<8} "
              f"last seen {r['last_seen'] or '-'}")
    print(f"{len(rows)} device(s)")
    return 0


def cmd_show(args) -> int:
    from sqlalchemy import select

    from fleet.lifecycle import LifecycleError, get_device
    from fleet.models import DeviceCommand

    with _session(args.db) as session:
        try:
            d = get_device(session, args.ident)
        except LifecycleError as e:
            raise TelegestError(e.message) from None
        row = {**_device_row(d), "health": d.health,
               "provisioned_at": d.provisioned_at, "has_credentials": bool(d.credential_hash),
               "broker_username": d.broker_username or d.ident,
               "staged_until": d.staged_expires_at,
               "commands": [{"id": c.id, "kind": c.kind, "state": c.state,
                             "expires_at": c.expires_at, "result": c.result}
                            for c in session.scalars(select(DeviceCommand).where(
                                DeviceCommand.device_id == d.id).order_by(DeviceCommand.id))]}
    _print(row, True)
    return 0


def _print_credentials(creds) -> None:
    print(f"device    {creds.ident}  ({creds.status})")
    print(f"username  {creds.username}")
    print(f"password  {creds.password}")
    print(f"client id {creds.client_id}")
    print("shown once: the fleet keeps only a hash." + (
        "" if creds.broker_enforced else " The broker is anonymous: nothing enforces it."))


def cmd_provision(args) -> int:
    from fleet.lifecycle import provision

    with _acting(args) as (session, actor, broker):
        creds = provision(session, args.ident, actor, broker, reason=args.reason)
    _print_credentials(creds)
    return 0


def cmd_unblock(args) -> int:
    from fleet.lifecycle import unblock

    with _acting(args) as (session, actor, broker):
        creds = unblock(session, args.ident, actor, broker, reason=args.reason)
    _print_credentials(creds)
    return 0


def cmd_block(args) -> int:
    from fleet.lifecycle import block

    with _acting(args) as (session, actor, broker):
        cmd = block(session, args.ident, actor, broker, args.reason)
    print(f"{args.ident} blocked: the broker refuses it; wipe command {cmd.id} queued until "
          f"{cmd.expires_at:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_retire(args) -> int:
    from fleet.lifecycle import retire

    with _acting(args) as (session, actor, broker):
        retire(session, args.ident, actor, broker, args.reason)
    print(f"{args.ident} retired: its broker client is deleted")
    return 0


def cmd_maintenance_code(args) -> int:
    from fleet.maintenance import issue

    with _acting(args) as (session, actor, _broker):
        mc = issue(session, args.ident, actor, reason=args.reason)
    print(f"maintenance code for {mc.ident}: {mc.code}")
    print(f"valid once, until {mc.expires_at:%Y-%m-%d %H:%M} UTC: type `maint {mc.code}` on "
          "the box's console (`telegest device console`). Issued in your name (audit log).")
    return 0


def cmd_audit(args) -> int:
    from fleet.audit import query

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            raise TelegestError(f"--since {args.since!r}: use ISO 8601 with an offset") from None
        if since.tzinfo is None:
            raise TelegestError("--since needs a UTC offset, e.g. 2026-11-23T07:00:00Z")
    target = args.target
    if target and ":" not in target and not target.endswith("*"):
        target = f"device:{target}"
    with _session(args.db) as session:
        rows = [{"at": e.at.isoformat(), "who": e.who, "role": e.role, "action": e.action,
                 "target": e.target, "why": e.why, "detail": e.detail}
                for e in session.scalars(query(target, args.action, since).limit(args.limit))]
    if args.json:
        _print(rows, True)
        return 0
    for r in rows:
        why = f"  why: {r['why']}" if r["why"] else ""
        print(f"{r['at']}  {r['who']} ({r['role'] or '-'})  {r['action']}  {r['target']}{why}")
    return 0


# -- the table ---------------------------------------------------------------------------------
def add_commands(fleet_parsers, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `device ...` under `telegest fleet`; `command(parent, name, handler, help)`."""
    dev = fleet_parsers.add_parser(
        "device", help="device lifecycle: provision, block, unblock, retire, audit",
        description="device lifecycle (registered → provisioned → active → blocked → "
                    "wiped or retired), on the database directly").add_subparsers(
        dest="device_cmd", required=True)

    def common(p, acting: bool = False) -> argparse.ArgumentParser:
        p.add_argument("--db", default=DEFAULT_DB)
        if acting:
            p.add_argument("--by", required=True, help="who you are, for the audit log")
        return p

    ls = common(command(dev, "list", cmd_list, "list devices and their status"))
    ls.add_argument("--status", choices=["registered", "provisioned", "active", "blocked",
                                         "wiped", "retired"])
    ls.add_argument("--json", action="store_true")
    sh = common(command(dev, "show", cmd_show, "one device: status, health, commands"))
    sh.add_argument("ident")
    for name, handler, help_, reason_required in (
            ("provision", cmd_provision, "new broker credentials, printed once", False),
            ("block", cmd_block, "lost or stolen: refused by the broker at once, wipe queued",
             True),
            ("unblock", cmd_unblock, "get a blocked device back: provisioned again, new "
             "credentials printed once", False),
            ("retire", cmd_retire, "out of service for good: its broker client is deleted",
             True)):
        p = common(command(dev, name, handler, help_), acting=True)
        p.add_argument("ident")
        p.add_argument("--reason", required=reason_required,
                       help="why (required)" if reason_required else "why (optional)")
    mc = common(command(dev, "maintenance-code", cmd_maintenance_code, "a one-time code, "
                        "valid 30 min, that opens a reader's serial console"), acting=True)
    mc.add_argument("ident")
    mc.add_argument("--reason", help="why (optional)")
    au = common(command(dev, "audit", cmd_audit, "the audit log, newest first"))
    au.add_argument("target", nargs="?", help="a device ident, `device:<ident>`, or a prefix*")
    au.add_argument("--action")
    au.add_argument("--since", help="ISO 8601 with an offset")
    au.add_argument("--limit", type=int, default=100)
    au.add_argument("--json", action="store_true")
    from tools.fleetops.badges import add_commands as add_badge_commands

    add_badge_commands(fleet_parsers, command, common)
