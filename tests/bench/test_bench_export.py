"""`telegest bench export` with a few hundred visits: it runs each export in its own process
and prints the JSON it promises (no timing assertion: the figures are the benchmark's)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT


def test_bench_export_prints_its_figures():
    r = subprocess.run([sys.executable, "-m", "tools.cli", "bench", "export", "--visits",
                        "400", "--json"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("esppadom_s", "payroll_s", "billing_s", "peak_rss_mb", "esppadom_mb",
                "seed_s"):
        assert key in out, out
    assert out["visits"] == 400 and out["esppadom_mb"] > 0 and out["peak_rss_mb"] > 0
    r = subprocess.run([sys.executable, "-m", "tools.cli", "bench", "export", "--visits", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "telegest: --visits: at least 1"
