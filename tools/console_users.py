"""`telegest fleet user add|passwd|disable|enable|list`: the console's accounts, on the database
directly.

The first admin is made here (`telegest fleet user add --role admin EMAIL`); the password is
asked twice on the terminal, or read from standard input with --password-stdin (scripts).
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable

from tools.errors import TelegestError

DEFAULT_DB = os.environ.get("TELEGEST_DATABASE_URL", "sqlite:///var/telegest.db")


def _password(args) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise TelegestError("--password-stdin: nothing was read")
        return password
    if not sys.stdin.isatty():
        raise TelegestError("no terminal to ask the password on: use --password-stdin")
    from fleet.console.auth import MIN_PASSWORD

    first = getpass.getpass(f"Password ({MIN_PASSWORD} characters or more): ")
    if first != getpass.getpass("Again: "):
        raise TelegestError("the two passwords differ; nothing was changed")
    return first


def _run(args, act: Callable) -> int:
    from fleet.console.auth import AuthError
    from fleet.db import make_engine, prepare, session_factory

    prepare(args.db)
    engine = make_engine(args.db)
    try:
        with session_factory(engine)() as session:
            try:
                out = act(session)
            except AuthError as e:
                raise TelegestError(str(e)) from None
            session.commit()
            return out
    finally:
        engine.dispose()


def cmd_user_add(args) -> int:
    from fleet.console.users import create_user

    password = _password(args)

    def act(session) -> int:
        user = create_user(session, args.email, args.role, password,
                           organisation_id=args.org, by=f"cli:{getpass.getuser()}",
                           language=args.language)
        print(f"user {user.email} ({user.role}) created; sign in at /login")
        return 0
    return _run(args, act)


def cmd_user_passwd(args) -> int:
    from fleet.console.users import set_password

    password = _password(args)

    def act(session) -> int:
        user = set_password(session, args.email, password, by=f"cli:{getpass.getuser()}")
        print(f"password of {user.email} changed; their open sessions are closed")
        return 0
    return _run(args, act)


def _set_active(args, active: bool) -> int:
    from fleet.console.users import set_active

    def act(session) -> int:
        ended = set_active(session, args.email, active, by=f"cli:{getpass.getuser()}")
        email = args.email.strip().lower()
        if active:
            print(f"user {email} enabled: they can sign in again")
        else:
            print(f"user {email} disabled: cannot sign in; {ended} open session(s) ended")
        return 0
    return _run(args, act)


def cmd_user_disable(args) -> int:
    return _set_active(args, False)


def cmd_user_enable(args) -> int:
    return _set_active(args, True)


def cmd_user_list(args) -> int:
    from fleet.console.users import list_users

    def act(session) -> int:
        users = list_users(session)
        if args.json:
            print(json.dumps([{"email": u.email, "role": u.role, "active": u.active,
                               "organisation_id": u.organisation_id, "language": u.language}
                              for u in users]))
            return 0
        for u in users:
            org = u.organisation_id if u.organisation_id is not None else "all"
            print(f"{u.email:40} {u.role:11} org={org} {'active' if u.active else 'inactive'}")
        if not users:
            print("no user yet: telegest fleet user add --role admin EMAIL")
        return 0
    return _run(args, act)


def add_commands(fleet_parsers, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `user ...` under `telegest fleet`; `command(parent, name, handler, help)`."""
    user = fleet_parsers.add_parser(
        "user", help="console accounts: add, passwd, disable, enable, list",
        description="accounts of the manager console (admin, manager, technician)"
    ).add_subparsers(dest="user_cmd", required=True)

    def common(p) -> argparse.ArgumentParser:
        p.add_argument("--db", default=DEFAULT_DB)
        return p

    add = common(command(user, "add", cmd_user_add, "create an account (the first admin too)"))
    add.add_argument("email")
    add.add_argument("--role", choices=["admin", "manager", "technician"], default="manager")
    add.add_argument("--org", type=int, default=None,
                     help="organisation id (default: none, sees every organisation)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of asking")
    add.add_argument("--language", choices=["fr", "en"], default=None,
                     help="the console's language (default: the browser's; changed on /account)")
    pw = common(command(user, "passwd", cmd_user_passwd, "change an account's password"))
    pw.add_argument("email")
    pw.add_argument("--password-stdin", action="store_true")
    off = common(command(user, "disable", cmd_user_disable,
                         "stop an account at once: no sign-in, every session ended"))
    off.add_argument("email")
    on = common(command(user, "enable", cmd_user_enable, "let a disabled account sign in again"))
    on.add_argument("email")
    ls = common(command(user, "list", cmd_user_list, "list the accounts"))
    ls.add_argument("--json", action="store_true")
