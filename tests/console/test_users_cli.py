"""`telegest fleet user add|passwd|list`, through the argparse table the main CLI uses."""
from __future__ import annotations

import argparse
import io

import pytest

from tools.console_users import add_commands
from tools.errors import TelegestError


def run(argv: list[str], stdin: str = "", monkeypatch=None) -> int:
    p = argparse.ArgumentParser(prog="telegest")
    fleet = p.add_subparsers(dest="area").add_parser("fleet").add_subparsers(dest="cmd")

    def command(parent, name, handler, help):
        c = parent.add_parser(name, help=help)
        c.set_defaults(handler=handler)
        return c
    add_commands(fleet, command)
    args = p.parse_args(["fleet", *argv])
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return args.handler(args)


def test_first_admin_then_passwd_and_list(database_url, monkeypatch, capsys):
    from fleet.console.auth import authenticate
    from fleet.db import make_engine, session_factory

    assert run(["user", "add", "--role", "admin", "Boss@Agency.fr", "--password-stdin",
                "--db", database_url], "a long enough secret\n", monkeypatch) == 0
    assert "boss@agency.fr (admin) created" in capsys.readouterr().out
    with pytest.raises(TelegestError, match="already exists"):
        run(["user", "add", "boss@agency.fr", "--password-stdin", "--db", database_url],
            "a long enough secret\n", monkeypatch)
    with pytest.raises(TelegestError, match="at least 10"):
        run(["user", "add", "new@agency.fr", "--password-stdin", "--db", database_url],
            "short\n", monkeypatch)
    assert run(["user", "passwd", "boss@agency.fr", "--password-stdin", "--db",
                database_url], "another long secret\n", monkeypatch) == 0
    run(["user", "list", "--db", database_url], "", monkeypatch)
    assert "boss@agency.fr" in capsys.readouterr().out
    engine = make_engine(database_url)
    with session_factory(engine)() as s:
        assert authenticate(s, "boss@agency.fr", "a long enough secret") is None
        assert authenticate(s, "boss@agency.fr", "another long secret").role == "admin"
    engine.dispose()


def test_no_terminal_and_no_stdin_flag_is_a_clear_error(database_url, monkeypatch):
    with pytest.raises(TelegestError, match="--password-stdin"):
        run(["user", "add", "x@agency.fr", "--db", database_url], "", monkeypatch)
