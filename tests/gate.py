"""The CI gate (TELEGEST_REQUIRE_ALL_MARKERS=1): every marker collects tests, nothing is skipped.

Hooks that tests/conftest.py takes in. Under pytest-xdist each worker collects the whole suite
and sends its counts per marker to the controller (`workeroutput`), which also receives every
test's report: the check runs once, in the controller, on the whole collection. Without xdist
the one process does both.
"""
from __future__ import annotations

import os

import pytest

REQUIRED_MARKERS = ("e2e", "chaos", "micropython", "virtual_hw", "browser", "postgres",
                    "cluster")
COUNTS_KEY = "telegest_marker_counts"
_skipped: list[str] = []
_marker_counts: dict[str, int] = {}


def _require_all() -> bool:
    return os.environ.get("TELEGEST_REQUIRE_ALL_MARKERS") == "1"


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_collection_modifyitems(session, config, items):
    for name in REQUIRED_MARKERS:
        _marker_counts[name] = sum(1 for item in items if item.get_closest_marker(name))
    if _is_worker(config):
        config.workeroutput[COUNTS_KEY] = dict(_marker_counts)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """(controller) A worker's counts: every worker collected the same whole suite."""
    for name, n in getattr(node, "workeroutput", {}).get(COUNTS_KEY, {}).items():
        _marker_counts[name] = max(n, _marker_counts.get(name, 0))


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if not _require_all() or _is_worker(session.config):
        return
    empty = [m for m in REQUIRED_MARKERS if not _marker_counts.get(m)]
    problems = []
    if empty:
        problems.append(f"markers that collected no test: {', '.join(empty)}")
    if _skipped:
        problems.append(f"{len(_skipped)} skipped test(s), CI runs everything: "
                        + ", ".join(_skipped[:5]))
    if problems:
        print("\nCI gate failed: " + "; ".join(problems))
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if _marker_counts:
        counts = ", ".join(f"{m}={_marker_counts.get(m, 0)}" for m in REQUIRED_MARKERS)
        terminalreporter.write_line(f"tests per marker: {counts}")
