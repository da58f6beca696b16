"""`run_bench_fleet` end to end with a few devices: it runs and prints the JSON it promises,
its devices leave from source addresses spread over 127.0.0.0/8, a broker that refuses them
ends the run with one line and a non-zero exit, and the cluster path works (no timing
assertion: figures come from the benchmark itself, docs/benchmarks.md)."""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import tempfile
from types import SimpleNamespace

import pytest

from tools.bench.aiomqtt_lite import ConnackRefused, LiteClient, error_kind
from tools.bench.fleet import failure_line, run_bench_fleet
from tools.bench.fleet_devices import source_address
from tools.broker import Broker, free_port
from tools.cli import main as cli_main

# many processes each (a broker, the API, workers, readers): one at a time (docs/testing.md)
processes = pytest.mark.xdist_group("processes")
KEYS = ("connected", "health_per_s", "backlog", "push_all_s", "p99_tap_to_stored_s",
        "connect_errors", "dropped", "source_addresses", "workers", "broker", "duration_s",
        "file_limit", "loadavg_start")


def test_source_addresses_spread_over_127_8():
    per = 200
    got = [source_address(k, per) for k in range(0, 2_000_000, 97)]
    addrs = {ipaddress.ip_address(a) for a in got}
    assert all(a in ipaddress.ip_network("127.0.0.0/8") for a in addrs)
    assert all(a.packed[1] != 0 and 1 <= a.packed[3] <= 254 and 1 <= a.packed[2] <= 254
               for a in addrs)  # never 127.0.x.x, never .0 or .255
    assert len({source_address(k, per) for k in range(50_000)}) == 250  # 200 a piece
    assert source_address(199, per) == source_address(0, per) != source_address(200, per)
    assert len({source_address(k, 1) for k in range(100_000)}) == 100_000  # all distinct


def test_error_kinds_are_one_word_each():
    assert error_kind(ConnackRefused("d1", 5)) == "connack_5"
    assert error_kind(asyncio.TimeoutError()) == "timeout"
    assert error_kind(asyncio.IncompleteReadError(b"", 1)) == "closed"
    assert error_kind(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) == "ECONNREFUSED"
    assert error_kind(OSError(errno.EADDRNOTAVAIL, "no port")) == "EADDRNOTAVAIL"
    assert error_kind(ValueError("x")) == "ValueError"


def test_failure_line_says_what_how_many_and_why():
    from collections import Counter

    line = failure_line(50_000, 19_990, 30_010, Counter({"closed": 40_000, "timeout": 20}),
                        "mosquitto", 1, 20_000, 3, "/tmp/x/mosquitto.log")
    assert "\n" not in line
    assert line.startswith("bench fleet: 19,990 of 50,000 devices connected to mosquitto")
    assert "40,000 closed" in line and "file limit" in line and "--broker cluster" in line


@pytest.mark.e2e
def test_a_device_leaves_from_its_own_source_address(tmp_path):
    broker = Broker("mosquitto", workdir=tmp_path / "broker", purpose="a test").start()
    try:
        async def go() -> tuple:
            c = LiteClient("src-1")
            await c.connect(broker.host, broker.port, source="127.7.8.9", timeout=10)
            assert c.connected  # the broker's CONNACK came back to that address
            ends = (c._writer.get_extra_info("sockname"), c._writer.get_extra_info("peername"))
            c.close()
            return ends
        (src, sport), peer = asyncio.run(go())
        assert src == "127.7.8.9" and sport > 0 and peer == (broker.host, broker.port)
    finally:
        broker.stop()


@pytest.mark.e2e
def test_refusals_are_raised_by_kind(tmp_path):
    """Nothing listening: ECONNREFUSED; a broker enforcing logins: CONNACK 5 (3.1.1's 'not
    authorized'). Either way the socket is closed and nothing is printed."""
    nobody = free_port()
    broker = Broker("mosquitto", workdir=tmp_path / "broker", purpose="a test",
                    auth=True).start()
    try:
        async def go() -> list[str]:
            kinds = []
            for port in (nobody, broker.port):
                c = LiteClient("anonymous")
                try:
                    await c.connect("127.0.0.1", port, source="127.7.8.10", timeout=10)
                except Exception as e:  # noqa: BLE001 - the kind is what is checked
                    kinds.append(error_kind(e))
                assert not c.connected
            return kinds
        assert asyncio.run(go()) == ["ECONNREFUSED", "connack_5"]
    finally:
        broker.stop()


@pytest.mark.e2e
@processes
def test_bench_fleet_prints_its_figures(capsys):
    code = run_bench_fleet(SimpleNamespace(devices=50, json=True, health_every=2, seconds=3,
                                           db=None, per_address=10, per_process=20))
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in KEYS:
        assert key in out, out
    assert out["connected"] == 50 and set(out["backlog"]) == {"start", "end", "max", "grew"}
    assert out["source_addresses"] == 5 and out["load_processes"] == 3
    assert out["connect_errors"] == {} and out["taps_unacked"] == 0
    assert out["push_reached"] == 50
    assert code == 0


@pytest.mark.e2e
@processes
def test_a_broker_that_refuses_ends_the_run_in_one_line(capfd, monkeypatch, tmp_path):
    """The broker's file limit lowered to 64 (as 20,000 is for 50,000 devices): it cannot hold
    120 devices. The run stops after the connect phase with one `telegest:` line (how many
    connected, the failures by kind, why) and exit code 2: no traceback, no JSON."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the folder it keeps, the log
    code = cli_main(["bench", "fleet", "--devices", "120", "--per-process", "60",
                     "--broker-file-limit", "64", "--attempts", "2", "--json"])
    out, err = capfd.readouterr()
    assert code == 2
    assert out.strip() == ""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("telegest:")]
    assert len(lines) == 1, err
    line = lines[0]
    assert " of 120 devices connected to mosquitto" in line
    assert "gave up after 2 attempts" in line and "file limit 64" in line
    assert "closed" in line or "ECONNRESET" in line or "timeout" in line
    assert f"(log: {tmp_path}" in line  # the failed run's folder is kept for its log


@pytest.mark.cluster
@processes
def test_bench_fleet_on_a_nats_cluster(capsys):
    """Three NATS servers, two workers in NATS mode, devices on every node: every device
    connected, every tap acked, the planning on all."""
    code = run_bench_fleet(SimpleNamespace(devices=60, json=True, health_every=2, seconds=4,
                                           db=None, broker="cluster", nodes=3, workers=2,
                                           per_process=30, per_address=7))
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in KEYS:
        assert key in out, out
    assert out["broker"] == "cluster" and out["broker_processes"] == 3
    assert out["workers"] == 2 and out["connected"] == 60 and out["connect_errors"] == {}
    assert out["taps"] > 0 and out["taps_unacked"] == 0
    assert out["push_reached"] == 60 and out["worker_errors"] == 0
    # where a tap's time went: the workers' slowest clock messages, stage by stage
    slow = out["worker_slowest_clock"]
    assert slow and len(slow) <= 8, out
    for row in slow:
        assert row["stream_to_queue_s"] is not None  # through JetStream: its timestamp
        assert row["total_s"] >= row["queue_to_commit_s"] >= 0 and row["worker"] in (0, 1)
    assert isinstance(out["load_stalls"], list) and out["workdir"] is None
    assert code == 0
