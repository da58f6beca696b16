"""`run_bench_fleet` end to end with a few devices: it runs and prints the JSON it promises
(no timing assertion: figures come from the benchmark itself, docs/operations.md)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tools.bench.fleet import run_bench_fleet

# many processes each (a broker, the API, workers, readers): one at a time (docs/testing.md)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("processes")]


def test_bench_fleet_prints_its_figures(capsys):
    code = run_bench_fleet(SimpleNamespace(devices=50, json=True, health_every=2, seconds=3,
                                           db=None))
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("connected", "health_per_s", "backlog", "push_all_s", "p99_tap_to_stored_s",
                "duration_s", "file_limit"):
        assert key in out, out
    assert out["connected"] == 50 and set(out["backlog"]) == {"start", "end", "max", "grew"}
    assert code == 0
