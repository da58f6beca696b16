"""Finding "web hardening" (issue #14, item 7), its files part: the SQLite database and every
secret file the project writes are created 0600 from the start, never chmod'ed after.

Before: the SQLite file (and its -wal, -shm) came out 0644 under the usual umask, readable by
every local user; the broker's dynamic-security file (its admin and worker passwords) was
written with the default mode, then chmod'ed.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fleet.private_files import create_private, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """umask 0: any file created without an explicit mode would come out 0666."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def no_chmod(monkeypatch):
    """A chmod after the fact fails the test: the mode must be right at creation."""
    def refuse(*_a, **_k):
        raise AssertionError("chmod after creation: the file was readable in between")
    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)


def test_web_hardening_sqlite_file_created_0600(tmp_path, open_umask, no_chmod):
    from sqlalchemy import text

    from fleet.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'var' / 'telegest.db'}"
    migrate(url)
    engine = make_engine(url)
    with engine.connect() as conn:  # WAL: the -wal and -shm files exist while connected
        conn.execute(text("SELECT count(*) FROM users")).scalar()
        files = sorted((tmp_path / "var").iterdir())
        assert [f.name for f in files] == ["telegest.db", "telegest.db-shm", "telegest.db-wal"]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    engine.dispose()


def test_web_hardening_an_older_sqlite_file_is_narrowed_to_0600(tmp_path):
    from fleet.db import make_engine, migrate

    db = tmp_path / "telegest.db"
    db.touch()
    db.chmod(0o644)
    migrate(f"sqlite:///{db}")
    make_engine(f"sqlite:///{db}").dispose()
    assert mode(db) == 0o600


def test_web_hardening_secret_files_written_0600(tmp_path, open_umask, no_chmod):
    write_private(tmp_path / "new.txt", "secret\n")
    assert mode(tmp_path / "new.txt") == 0o600
    old = tmp_path / "old.txt"  # an existing, wider file is narrowed before it holds anything
    fd = os.open(old, os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    write_private(old, b"another secret")
    assert mode(old) == 0o600 and old.read_bytes() == b"another secret"
    with pytest.raises(FileExistsError):
        write_private(old, "x", exclusive=True)
    assert create_private(tmp_path / "empty") and mode(tmp_path / "empty") == 0o600
    assert not create_private(tmp_path / "empty")


def test_web_hardening_broker_and_up_secrets_are_0600(tmp_path, open_umask, no_chmod):
    from tools.broker import Broker
    from tools.up_broker import read_credentials, write_credentials

    broker = Broker("mosquitto", workdir=tmp_path / "broker", auth=True)
    broker.workdir.mkdir(parents=True, exist_ok=True)
    broker._write_dynsec()  # the admin's and the worker's passwords
    assert mode(broker.dynsec_path) == 0o600
    assert json.loads(broker.dynsec_path.read_text())["clients"]
    write_credentials(tmp_path / "credentials.json", {"worker": {"password": "p"}})
    assert mode(tmp_path / "credentials.json") == 0o600
    assert read_credentials(tmp_path / "credentials.json") == {"worker": {"password": "p"}}


def test_web_hardening_up_admin_key_file_is_0600(database_url, tmp_path, open_umask, no_chmod):
    from fleet.db import migrate
    from tools.up import admin_key

    migrate(database_url)
    key = admin_key(database_url, tmp_path / "api-key.txt")
    assert mode(tmp_path / "api-key.txt") == 0o600
    assert admin_key(database_url, tmp_path / "api-key.txt") == key  # read again, not remade
