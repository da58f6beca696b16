"""`telegest fleet device ...` on the database directly: the same checks and audit as the API."""
from __future__ import annotations

import json

import pytest

from tools.errors import TelegestError
from tools.cli import build_parser


def run(argv, capsys):
    args = build_parser().parse_args(["fleet", "device", *argv])  # the real command table
    code = args.handler(args)
    return code, capsys.readouterr().out


def test_provision_block_unblock_retire_audit(demo, capsys, monkeypatch):
    monkeypatch.delenv("TELEGEST_DYNSEC_USERNAME", raising=False)
    db = ["--db", demo[0]]
    code, out = run(["provision", "demo-r3", "--by", "alice", *db], capsys)
    assert code == 0 and "password  " in out and "shown once" in out
    with pytest.raises(SystemExit):  # --reason is required to block
        run(["block", "demo-r3", "--by", "alice", *db], capsys)
    code, out = run(["block", "demo-r3", "--by", "bob", "--reason", "lost", *db], capsys)
    assert "blocked" in out and "wipe command" in out
    with pytest.raises(TelegestError, match="is blocked: cannot block it"):
        run(["block", "demo-r3", "--by", "bob", "--reason", "again", *db], capsys)
    code, out = run(["unblock", "demo-r3", "--by", "carol", *db], capsys)
    assert "(provisioned)" in out
    run(["retire", "demo-r3", "--by", "dave", "--reason", "broken", *db], capsys)
    _, out = run(["show", "demo-r3", *db], capsys)
    shown = json.loads(out)
    assert shown["status"] == "retired" and shown["commands"][0]["state"] == "failed"
    _, out = run(["list", "--status", "retired", "--json", *db], capsys)
    assert [d["ident"] for d in json.loads(out)] == ["demo-r3"]
    _, out = run(["audit", "demo-r3", "--json", *db], capsys)
    assert [(e["who"], e["action"], e["why"]) for e in json.loads(out)] == [
        ("cli:dave", "retire", "broken"), ("cli:carol", "unblock", None),
        ("cli:bob", "block", "lost"), ("cli:alice", "provision", None)]
    with pytest.raises(TelegestError, match="UTC offset"):
        run(["audit", "--since", "2026-01-01T00:00", *db], capsys)
