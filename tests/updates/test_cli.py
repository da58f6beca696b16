"""`telegest fleet bundle ...` and `telegest fleet rollout ...` (tools.updates), through an
argparse tree built the way tools/cli.py builds it."""
from __future__ import annotations

import json

import pytest

from fleet.updates import read_bundle, verify_manifest
from tools.errors import TelegestError
from tools.up import seed
from tools.cli import build_parser


def run(*argv: str) -> int:
    args = build_parser().parse_args(["fleet", *argv])  # the real command table
    return args.handler(args)


def test_keygen_create_sign_upload_rollout(tmp_path, database_url, monkeypatch, capsys):
    key = tmp_path / "release.pem"
    assert run("bundle", "keygen", "--out", str(key)) == 0
    pub = capsys.readouterr().out.split('KEYS = ("')[1].split('"')[0]
    assert (key.stat().st_mode & 0o777) == 0o600
    with pytest.raises(TelegestError, match="never overwritten"):
        run("bundle", "keygen", "--out", str(key))
    out = tmp_path / "fw.tgb"
    assert run("bundle", "create", "firmware", "--version", "0.2.0", "-o", str(out)) == 0
    b = read_bundle(out.read_bytes())
    names = set(b.files)
    assert "firmware/reader.py" in names and "firmware/ota/updater.py" in names
    assert "firmware/main.py" not in names and "firmware/boot.py" not in names
    assert b.signature is None
    run("bundle", "sign", str(out), "--key", str(key))
    b = read_bundle(out.read_bytes())
    assert verify_manifest([pub], b.manifest, b.signature)

    info = seed(database_url)
    db = ["--db", database_url]
    with pytest.raises(TelegestError, match="no trusted key|bad signature"):
        run("bundle", "upload", str(out), *db, "--by", "rm")
    monkeypatch.setenv("TELEGEST_UPDATE_KEYS", pub)
    assert run("bundle", "upload", str(out), *db, "--by", "rm") == 0
    run("bundle", "list", *db, "--json")
    capsys.readouterr()
    run("bundle", "list", *db, "--json")
    assert json.loads(capsys.readouterr().out)[0]["version"] == "0.2.0"

    with pytest.raises(TelegestError, match="say which devices"):
        run("rollout", "start", "0.2.0", *db, "--by", "rm")
    with pytest.raises(TelegestError, match="no bundle"):
        run("rollout", "start", "9.9.9", "--all", *db, "--by", "rm")
    run("rollout", "start", "0.2.0", "--devices", ",".join(info["devices"]), "--waves",
        "20,100", "--max-failures", "2", *db, "--by", "rm", "--json")
    st = json.loads(capsys.readouterr().out)
    assert st["state"] == "running" and len(st["targets"]) == 5
    run("rollout", "pause", "1", "--reason", "look first", *db, "--by", "rm")
    assert "paused (look first)" in capsys.readouterr().out
    run("rollout", "resume", "1", *db, "--by", "rm")
    run("rollout", "status", "1", *db)
    assert "running" in capsys.readouterr().out
    with pytest.raises(TelegestError, match="cannot resume"):
        run("rollout", "resume", "1", *db, "--by", "rm")
    run("rollout", "cancel", "1", *db, "--by", "rm")
    run("rollout", "list", *db)
    assert "cancelled" in capsys.readouterr().out
