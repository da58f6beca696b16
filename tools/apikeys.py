"""`telegest fleet apikey [add|list|revoke]`: API keys on the database directly (fleet.keys).

`add` (the default, so `telegest fleet apikey --role manager` keeps working) prints the key once;
`list` shows every key with its role, name, quota, calls today and expiry; `revoke ID` ends one.
"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from tools import argtypes as at
from tools.errors import TelegestError

DEFAULT_DB = os.environ.get("TELEGEST_DATABASE_URL", "sqlite:///var/telegest.db")
_quota = at._ranged(int, 1, 100_000_000, "calls a day, from 1 to 100000000")
_days = at._ranged(int, 1, 3650, "days from 1 to 3650")


def _run(db: str, act: Callable) -> int:
    from fleet.db import make_engine, prepare, session_factory

    prepare(db)
    engine = make_engine(db)
    try:
        with session_factory(engine)() as session:
            out = act(session)
            session.commit()
            return out
    finally:
        engine.dispose()


def cmd_apikey(args) -> int:
    if args.action != "revoke" and args.key_id is not None:
        raise TelegestError(f"apikey {args.action} takes no key id (revoke does)")
    return {"add": _add, "list": _list, "revoke": _revoke}[args.action](args)


def _add(args) -> int:
    from fleet.keys import create_api_key

    expires = (datetime.now(timezone.utc) + timedelta(days=args.expires_days)
               if args.expires_days else None)

    def act(session) -> int:
        try:
            key = create_api_key(session, args.role, args.label, organisation_id=args.org,
                                 daily_quota=args.quota, expires_at=expires)
        except ValueError as e:
            raise TelegestError(str(e)) from None
        print(key)
        return 0
    return _run(args.db, act)


def _list(args) -> int:
    from fleet import quotas
    from fleet.keys import list_keys, usable

    redis_url = os.environ.get("TELEGEST_QUOTA_REDIS_URL")  # where the API counts, if set
    counter = quotas.RedisCounter(redis_url) if redis_url else None

    def act(session) -> int:
        keys = list_keys(session, args.org)
        rows = [{"id": k.id, "prefix": k.prefix, "name": k.label, "role": k.role,
                 "organisation_id": k.organisation_id, "daily_quota": k.daily_quota,
                 "calls_today": quotas.used_today(session, k, None, counter),
                 "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                 "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                 "state": "usable" if usable(k) else ("revoked" if k.revoked else "expired")}
                for k in keys]
        if args.json:
            print(json.dumps(rows))
            return 0
        for r in rows:
            org = r["organisation_id"] if r["organisation_id"] is not None else "all"
            print(f"{r['id']:>4} {r['prefix']}… {r['name'][:24]:24} {r['role']:10} org={org} "
                  f"{r['calls_today']}/{r['daily_quota']} today  expires "
                  f"{(r['expires_at'] or 'never')[:16]}  {r['state']}")
        if not rows:
            print("no API key yet: telegest fleet apikey add --role manager --org ID")
        return 0
    return _run(args.db, act)


def _revoke(args) -> int:
    from fleet import audit
    from fleet.keys import revoke
    from fleet.models import ApiKey

    if args.key_id is None:
        raise TelegestError("apikey revoke needs the key's id (telegest fleet apikey list)")

    def act(session) -> int:
        key = session.get(ApiKey, args.key_id)
        if key is None:
            raise TelegestError(f"no API key {args.key_id}")
        if not revoke(session, key):
            print(f"API key {key.id} ({key.label}) was already revoked")
            return 0
        audit.record(session, "cli", "revoke", f"api_key:{key.id}", detail={"name": key.label})
        print(f"API key {key.id} ({key.label}) revoked: refused from now on")
        return 0
    return _run(args.db, act)


def add_commands(fleet_parsers, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `apikey` under `telegest fleet`; `command(parent, name, handler, help)`."""
    k = command(fleet_parsers, "apikey", cmd_apikey,
                "API keys: add one and print it once (the default), list them, revoke one")
    k.add_argument("action", nargs="?", choices=["add", "list", "revoke"], default="add")
    k.add_argument("key_id", nargs="?", type=at.positive_int, help="revoke: the key's id")
    k.add_argument("--db", default=DEFAULT_DB)
    k.add_argument("--role", choices=["admin", "manager", "technician"], default="admin")
    k.add_argument("--label", "--name", dest="label", default="cli", help="the key's name")
    k.add_argument("--org", type=at.positive_int, default=None,
                   help="add: the organisation id (default: none, sees every organisation); "
                        "list: only this organisation's keys")
    k.add_argument("--quota", type=_quota, default=10_000,
                   help="add: calls a UTC day before 429 (default 10000)")
    k.add_argument("--expires-days", type=_days, default=None,
                   help="add: refused after this many days (default: never)")
    k.add_argument("--json", action="store_true", help="list: as JSON")
