"""pytest plugin of the mutation runner (scripts/mutants.py): the empty SQLite database of a
test is a copy of one migrated once, not migrated again for every test. The migrations are
not what is mutated, and migrating took most of the matching tests' time."""
from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import fleet.db

_migrate = fleet.db.migrate
_template: Path | None = None


def migrate(url: str, revision: str = "head") -> None:
    global _template
    path = Path(url.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or revision != "head" or path.exists():
        return _migrate(url, revision)
    if _template is None:
        _template = Path(tempfile.mkdtemp(prefix="tg-mutants-")) / "migrated.db"
        _migrate(f"sqlite:///{_template}")
        with sqlite3.connect(_template) as db:  # everything in the file, no -wal left
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(_template, path)


fleet.db.migrate = migrate
