"""`telegest fleet bundle ...` and `telegest fleet rollout ...` (tools.updates), through an
argparse tree built the way tools/cli.py builds it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from fleet.update_signing import verify_manifest, verify_offer
from fleet.updates import read_bundle
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
    offer_file = tmp_path / "fw.offer.json"
    run("bundle", "offer", str(out), "--key", str(key), "--channel", "stable", "--expires-in",
        "2d", "-o", str(offer_file))
    offer = json.loads(offer_file.read_text())
    assert (offer["v"], offer["mh"], offer["ch"]) == ("0.2.0", b.sha256, "stable")
    assert verify_offer([pub], offer) and 0 < offer["exp"] - time.time() <= 2 * 86400

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
        run("rollout", "start", "0.2.0", "--offer", str(offer_file), *db, "--by", "rm")
    with pytest.raises(TelegestError, match="no bundle"):
        run("rollout", "start", "9.9.9", "--offer", str(offer_file), "--all", *db, "--by", "rm")
    with pytest.raises(TelegestError, match="not a signed offer"):
        run("rollout", "start", "0.2.0", "--offer", str(out), "--all", *db, "--by", "rm")
    run("rollout", "start", "0.2.0", "--offer", str(offer_file), "--devices",
        ",".join(info["devices"]), "--waves", "20,100", "--max-failures", "2", *db, "--by",
        "rm", "--json")
    st = json.loads(capsys.readouterr().out)
    assert st["state"] == "running" and len(st["targets"]) == 5
    run("rollout", "pause", "1", "--reason", "look first", *db, "--by", "rm")
    assert "paused (look first)" in capsys.readouterr().out
    run("rollout", "resume", "1", *db, "--by", "rm")
    run("rollout", "status", "1", *db)
    text = capsys.readouterr().out
    assert "running" in text and f"offer {offer['oid']} on channel stable" in text
    with pytest.raises(TelegestError, match="cannot resume"):
        run("rollout", "resume", "1", *db, "--by", "rm")
    run("rollout", "cancel", "1", *db, "--by", "rm")
    run("rollout", "list", *db)
    assert "cancelled" in capsys.readouterr().out


def test_keygen_with_passphrase_round_trip(tmp_path, monkeypatch, capsys):
    key, out = tmp_path / "release.pem", tmp_path / "fw.tgb"
    monkeypatch.setenv("TELEGEST_KEY_PASSPHRASE", "correct horse battery staple")
    umask = os.umask(0)  # 0600 from the start, whatever the umask allows
    try:
        assert run("bundle", "keygen", "--passphrase", "--out", str(key)) == 0
    finally:
        os.umask(umask)
    pub = capsys.readouterr().out.split('KEYS = ("')[1].split('"')[0]
    text = key.read_bytes()
    assert (key.stat().st_mode & 0o777) == 0o600
    assert text.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert b"correct horse" not in text
    run("bundle", "create", "firmware", "--version", "0.2.0", "-o", str(out))
    run("bundle", "sign", str(out), "--key", str(key))
    b = read_bundle(out.read_bytes())
    assert verify_manifest([pub], b.manifest, b.signature)
    # the passphrase from a file (its first line), then from the prompt
    monkeypatch.delenv("TELEGEST_KEY_PASSPHRASE")
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery staple\n")
    run("bundle", "offer", str(out), "--key", str(key), "--passphrase-file", str(pw),
        "-o", str(tmp_path / "o1.json"))
    assert verify_offer([pub], json.loads((tmp_path / "o1.json").read_text()))
    prompts = []
    monkeypatch.setattr("getpass.getpass",
                        lambda p: prompts.append(p) or "correct horse battery staple")
    run("bundle", "offer", str(out), "--key", str(key), "--channel", "beta",
        "-o", str(tmp_path / "o2.json"))
    assert prompts == ["passphrase of the signing key: "]
    assert json.loads((tmp_path / "o2.json").read_text())["ch"] == "beta"


def test_keygen_wrong_passphrase(tmp_path, monkeypatch):
    key, out = tmp_path / "release.pem", tmp_path / "fw.tgb"
    answers = iter(["one passphrase", "another"])
    monkeypatch.setattr("getpass.getpass", lambda p: next(answers))
    with pytest.raises(TelegestError, match="differ"):
        run("bundle", "keygen", "--passphrase", "--out", str(key))
    assert not key.exists()  # nothing written when the two differ
    (tmp_path / "pw").write_text("a passphrase\n")
    with pytest.raises(TelegestError, match="add --passphrase"):
        run("bundle", "keygen", "--passphrase-file", str(tmp_path / "pw"), "--out", str(key))
    assert not key.exists()  # not written unencrypted when a passphrase was meant
    monkeypatch.setenv("TELEGEST_KEY_PASSPHRASE", "the right one")
    run("bundle", "keygen", "--passphrase", "--out", str(key))
    run("bundle", "create", "firmware", "--version", "0.2.0", "-o", str(out))
    before = out.read_bytes()
    monkeypatch.setenv("TELEGEST_KEY_PASSPHRASE", "a wrong one")
    with pytest.raises(TelegestError, match="wrong passphrase"):
        run("bundle", "sign", str(out), "--key", str(key))
    with pytest.raises(TelegestError, match="wrong passphrase"):
        run("bundle", "offer", str(out), "--key", str(key))
    assert out.read_bytes() == before and read_bundle(before).signature is None
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "fleet", "bundle", "sign",
                           str(out), "--key", str(key)], capture_output=True, text=True,
                          env={**os.environ, "TELEGEST_KEY_PASSPHRASE": "a wrong one"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip() == "telegest: wrong passphrase for the key file", proc.stderr
    monkeypatch.setenv("TELEGEST_KEY_PASSPHRASE", "")
    with pytest.raises(TelegestError, match="empty passphrase"):
        run("bundle", "sign", str(out), "--key", str(key))
    monkeypatch.delenv("TELEGEST_KEY_PASSPHRASE")

    def no_terminal(prompt):
        raise EOFError
    monkeypatch.setattr("getpass.getpass", no_terminal)
    with pytest.raises(TelegestError, match="no passphrase"):
        run("bundle", "sign", str(out), "--key", str(key))
