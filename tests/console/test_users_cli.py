"""`telegest fleet user add|passwd|list`, through the argparse table the main CLI uses."""
from __future__ import annotations

import io

import pytest

from tools.cli import build_parser
from tools.errors import TelegestError


def run(argv: list[str], stdin: str = "", monkeypatch=None) -> int:
    args = build_parser().parse_args(["fleet", *argv])  # the real command table
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
    with pytest.raises(TelegestError, match="at least 12"):
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


def test_add_with_a_language_and_list_it(database_url, monkeypatch, capsys):
    import json

    assert run(["user", "add", "anne@agency.fr", "--language", "en", "--password-stdin",
                "--db", database_url], "a long enough secret\n", monkeypatch) == 0
    assert run(["user", "add", "bea@agency.fr", "--password-stdin", "--db", database_url],
               "a long enough secret\n", monkeypatch) == 0
    capsys.readouterr()
    run(["user", "list", "--json", "--db", database_url], "", monkeypatch)
    langs = {u["email"]: u["language"] for u in json.loads(capsys.readouterr().out)}
    assert langs == {"anne@agency.fr": "en", "bea@agency.fr": None}
    with pytest.raises(SystemExit):  # argparse refuses a language not offered
        run(["user", "add", "carl@agency.fr", "--language", "de", "--password-stdin",
             "--db", database_url], "a long enough secret\n", monkeypatch)


def test_no_terminal_and_no_stdin_flag_is_a_clear_error(database_url, monkeypatch):
    with pytest.raises(TelegestError, match="--password-stdin"):
        run(["user", "add", "x@agency.fr", "--db", database_url], "", monkeypatch)
