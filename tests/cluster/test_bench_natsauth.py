"""`telegest bench nats-auth`, small: it logs every device in, reloads, blocks one (which its
node disconnects), and says so in its JSON."""
from __future__ import annotations

import pytest

from tools.bench.natsauth import run

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("processes")]


def test_the_bench_runs_small_and_the_blocked_device_is_dropped():
    r = run(devices=30, nodes=3, cost=4, connect_batch=10)
    assert r["connected"] == 30 and r["failed"] == {}
    assert r["blocked_disconnected"] is True
    assert r["bcrypt_cost"] == 4 and r["login_cpu_ms_per_device"] > 0
    for key in ("provision_s", "connect_s", "reload_s", "reload_cpu_s", "block_to_disconnect_s",
                "publish_stall_ms_max"):
        assert isinstance(r[key], float) and r[key] >= 0, key
