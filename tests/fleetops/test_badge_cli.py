"""`telegest fleet badge ...` on the database directly: the same checks and audit as the API."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from fleet import tagtokens
from fleet.db import make_engine, session_factory
from fleet.models import AuditLog, Client, Organisation
from tests.helpers import pdf_text_runs
from tools.cli import build_parser
from tools.errors import TelegestError
from tools.field.sheet import token_lines


def run(argv, capsys):
    args = build_parser().parse_args(["fleet", "badge", *argv])  # the real command table
    code = args.handler(args)
    return code, capsys.readouterr().out


def test_issue_replace_revoke_restore(demo, capsys, tmp_path):
    db_url = demo[0]
    db = ["--db", db_url]
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        org = s.scalars(select(Organisation)).one()
        client = s.scalars(select(Client).order_by(Client.id)).first()
        secret, org_id, client_id = org.tag_secret, org.id, client.id
    engine.dispose()
    sheet = tmp_path / "tag.pdf"
    code, out = run(["issue", "--client-id", str(client_id), "--by", "alice",
                     "--sheet", str(sheet), *db], capsys)
    tag = json.loads(out)
    assert code == 0 and tag["signed"] and tagtokens.verify(secret, org_id, tag["uid"]) is None
    shown = [run[4] for run in pdf_text_runs(sheet.read_bytes())]
    assert all(line in shown for line in token_lines(tag["uid"]))
    with pytest.raises(SystemExit):  # --reason is required
        run(["replace", str(tag["id"]), "--by", "alice", *db], capsys)
    _, out = run(["replace", str(tag["id"]), "--reason", "QR photographed", "--by", "bob", *db],
                 capsys)
    new = json.loads(out)
    assert new["replaces"] == tag["id"] and new["uid"] != tag["uid"] and new["signed"]
    with pytest.raises(TelegestError, match=r"already replaced by badge .* \[409\]"):
        run(["replace", str(tag["id"]), "--reason", "again", "--by", "bob", *db], capsys)
    with pytest.raises(TelegestError, match=r"card UID 'zz'.*\[422\]"):
        run(["issue", "--caregiver-id", "1", "--uid", "zz", "--by", "bob", *db], capsys)
    with pytest.raises(TelegestError, match="give --client-id"):
        run(["issue", "--by", "bob", *db], capsys)
    with pytest.raises(TelegestError, match="badge 9999 not found"):
        run(["revoke", "9999", "--reason", "x", "--by", "bob", *db], capsys)
    _, out = run(["revoke", str(new["id"]), "--reason", "worn", "--by", "carol", *db], capsys)
    assert json.loads(out)["revoke_reason"] == "worn"
    _, out = run(["restore", str(new["id"]), "--by", "carol", *db], capsys)
    assert json.loads(out)["active"]
    _, out = run(["list", "--client-id", str(client_id), "--all", "--json", *db], capsys)
    rows = {r["id"]: r for r in json.loads(out)}
    assert not rows[tag["id"]]["active"] and rows[new["id"]]["active"]
    _, out = run(["list", "--client-id", str(client_id), *db], capsys)
    assert tag["uid"] not in out and new["uid"] in out and "badge(s)" in out
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        trail = [(a.who, a.action, a.why) for a in s.scalars(
            select(AuditLog).where(AuditLog.target.startswith("badge:")).order_by(AuditLog.id))]
    engine.dispose()
    assert trail == [("cli:alice", "create", None), ("cli:bob", "revoke", "QR photographed"),
                     ("cli:bob", "create", None), ("cli:carol", "revoke", "worn"),
                     ("cli:carol", "restore", None)]
