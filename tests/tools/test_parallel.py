"""What lets the suite run side by side (pytest-xdist, docs/testing.md): each worker's own
ports, its own PostgreSQL database, and the CI gate (every marker collects, nothing skipped)
checked once on the whole collection, with and without xdist."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.helpers import ROOT, worker_database_url
from tools import broker
from tools.broker import free_port, worker_ports

MARKED = """
import pytest

@pytest.mark.e2e
def test_e2e(): assert True
@pytest.mark.chaos
def test_chaos(): assert True
@pytest.mark.micropython
def test_micropython(): assert True
@pytest.mark.virtual_hw
def test_virtual_hw(): assert True
@pytest.mark.browser
def test_browser(): assert True
@pytest.mark.cluster
def test_cluster(): assert True
"""
POSTGRES = """
import pytest

@pytest.mark.postgres
def test_postgres(): assert True
"""
RUNS = [(), ("-p", "xdist.plugin", "-n", "2")]  # one process; a controller and two workers
# the gate's input, written into a tmp folder and run there (never collected by this suite): a
# suite with one skipping test, which the gate must turn into a failed run
SKIPPED = """
import pytest

@pytest.mark.postgres
def test_postgres(): pytest.skip("no server")
"""


def test_each_worker_has_a_port_range_of_its_own_below_the_ephemeral_ones():
    ranges = [worker_ports(f"gw{i}") for i in range(12)]
    assert all(r is not None and len(r) == 1000 for r in ranges)
    assert ranges[0].start == 20000 and ranges[-1].stop == 32000  # 32768: the ephemeral ones
    assert all(a.stop <= b.start for a, b in zip(ranges, ranges[1:]))
    assert worker_ports("gw12") is None and worker_ports("") is None
    assert worker_ports("master") is None


def test_free_port_under_a_worker_stays_in_its_range_and_skips_taken_ports(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw11")
    monkeypatch.setattr(broker, "_cursor", [])
    got = [free_port() for _ in range(50)]
    assert all(31000 <= p < 32000 for p in got) and len(set(got)) == 50
    with socket.socket() as held:  # another program listens on the next one: skipped
        nxt = worker_ports()[broker._cursor[0] % 1000]
        held.bind(("127.0.0.1", nxt))
        held.listen(1)
        assert free_port() != nxt


def test_free_port_outside_xdist_is_the_kernels(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    port = free_port()
    assert port >= 1024
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free indeed


@pytest.mark.postgres
def test_each_worker_gets_its_own_database_on_the_same_server(pg_database_url):
    url = os.environ["TELEGEST_TEST_DATABASE_URL"]
    assert worker_database_url(url, "") == url  # outside xdist: the database given
    mine = worker_database_url(url, "gwtest")
    assert make_url(mine).database == make_url(url).database + "_gwtest"
    assert worker_database_url(url, "gwtest") == mine  # already there: kept
    engine = sa.create_engine(mine)
    try:
        with engine.connect() as c:
            assert c.scalar(sa.text("SELECT current_database()")) == make_url(mine).database
    finally:
        engine.dispose()
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE "{make_url(mine).database}"')
    admin.dispose()


def _run_gate(tmp_path, files: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """pytest on a small suite of `files` with the gate's hooks, TELEGEST_REQUIRE_ALL_MARKERS=1."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "conftest.py").write_text(
        "from tests.gate import pytest_collection_modifyitems, pytest_runtest_logreport, "
        "pytest_sessionfinish, pytest_terminal_summary, pytest_testnodedown  # noqa\n")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = --strict-markers -p no:cacheprovider\nmarkers =\n"
        + "".join(f"    {m}: m\n" for m in ("e2e", "chaos", "micropython", "virtual_hw",
                                             "browser", "postgres", "cluster")))
    # only the plugin under test (the others would take seconds to load in each process)
    env = {**os.environ, "TELEGEST_REQUIRE_ALL_MARKERS": "1", "PYTHONPATH": str(ROOT),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", *args, str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", RUNS, ids=["alone", "xdist"])
def test_the_gate_passes_a_whole_suite_and_counts_each_marker_once(tmp_path, args):
    done = _run_gate(tmp_path, {"test_marked.py": MARKED, "test_pg.py": POSTGRES}, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("tests per marker: e2e=1, chaos=1, micropython=1, virtual_hw=1, browser=1, "
            "postgres=1, cluster=1") in done.stdout, done.stdout
    assert "CI gate failed" not in done.stdout


@pytest.mark.parametrize("args", RUNS, ids=["alone", "xdist"])
def test_the_gate_fails_a_run_with_a_skip_or_an_empty_marker(tmp_path, args):
    skipped = _run_gate(tmp_path, {"test_marked.py": MARKED, "test_pg.py": SKIPPED}, *args)
    assert skipped.returncode == 1, skipped.stdout + skipped.stderr
    assert "CI gate failed: 1 skipped test(s), CI runs everything: test_pg.py::test_postgres" \
        in skipped.stdout, skipped.stdout
    (tmp_path / "test_pg.py").unlink()
    empty = _run_gate(tmp_path, {}, *args)
    assert empty.returncode == 1, empty.stdout + empty.stderr
    assert "CI gate failed: markers that collected no test: postgres" in empty.stdout, \
        empty.stdout
