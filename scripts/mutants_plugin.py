"""pytest plugin of the mutation runner (scripts/mutants.py): the empty SQLite database of a
test is a copy of one migrated once, not migrated again for every test. The migrations are
not what is mutated, and migrating took most of the matching tests' time."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path

import pytest

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


# -- which tests run which function of the mutated module (MUTANTS_TRACE=<its path>) ---------
# A mutant is tested only against the tests that run its function: the others cannot see it.
if os.environ.get("MUTANTS_TRACE"):
    _target = os.path.realpath(os.environ["MUTANTS_TRACE"])
    _ran: dict[str, set[int]] = {}
    _now: set[int] = set()

    def _tracer(frame, event, arg):  # calls only, no line events: cheap
        if event == "call" and frame.f_code.co_filename == _target:
            _now.add(frame.f_code.co_firstlineno)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        _now.clear()
        sys.setprofile(_tracer)
        threading.setprofile(_tracer)
        try:
            yield
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
            _ran[item.nodeid] = set(_now)

    def pytest_sessionfinish(session):
        out = {k: sorted(v) for k, v in _ran.items()}
        Path(os.environ["MUTANTS_TRACE_OUT"]).write_text(json.dumps(out))


# -- only the tests that run the mutant's function (MUTANTS_SELECT=<a JSON list of node ids>) --
# through a file, not the command line: parametrized ids may hold any character
if os.environ.get("MUTANTS_SELECT"):
    _select = set(json.loads(Path(os.environ["MUTANTS_SELECT"]).read_text()))

    def pytest_collection_modifyitems(config, items):
        keep = [i for i in items if i.nodeid in _select]
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in _select])
        items[:] = keep
