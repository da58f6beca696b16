"""Chaos: broker restarts, worker kills, reader power cuts. Afterwards 0 lost, 0 duplicated."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, WorkerProcess, count_events, stored_seqs, wait_until
from tools.bench.ingest import register_devices
from tools.broker import Broker
from tools.sim.run import EMPTY_CONFIG
from tools.sim.reader import VirtualReader

pytestmark = pytest.mark.chaos

CONFIG = dict(EMPTY_CONFIG, badges=["04C0FFEE000001"])


@pytest.fixture
def setup(database_url, tmp_path):
    broker = Broker("mosquitto", workdir=tmp_path / "broker").start()
    worker = WorkerProcess(database_url, broker.host, broker.port, tmp_path / "worker.log")
    yield database_url, broker, worker
    worker.stop()
    broker.stop()


def start_readers(n, broker, tmp_path, prefix="chaos"):
    readers = [VirtualReader(f"{prefix}-{i:02d}", broker.host, broker.port,
                             tmp_path / "flash" / f"{prefix}-{i:02d}", CONFIG, ack_timeout=2.0)
               for i in range(n)]
    for r in readers:
        r.start()
    return readers


def tap_all(readers, per_reader, pause, stop_flag):
    for _ in range(per_reader):
        for r in readers:
            assert r.tap("04C0FFEE000001") != "full"
        time.sleep(pause)
    stop_flag.set()


def assert_exactly_once(db_url, readers, per_reader):
    for r in readers:
        assert r.wait_drained(120), f"{r.device_id} still holds {r.depth} unacked events"
    for r in readers:
        # resends after an outage may store a later batch first: compare as sets of seq
        assert sorted(stored_seqs(db_url, r.device_id)) == list(range(1, per_reader + 1))
    rows, distinct = count_events(db_url)
    total = len(readers) * per_reader
    assert (rows, distinct) == (total, total), f"lost {total - distinct}, dup {rows - distinct}"


def test_broker_restarted_5_times_while_5000_taps_flow_from_20_readers(setup, tmp_path):
    db_url, broker, worker = setup
    readers_ids = [f"chaos-{i:02d}" for i in range(20)]
    register_devices(db_url, readers_ids)
    worker.start()
    readers = start_readers(20, broker, tmp_path)
    done = threading.Event()
    tapper = threading.Thread(target=tap_all, args=(readers, 250, 0.04, done))
    try:
        tapper.start()
        for _ in range(5):
            time.sleep(1.5)
            broker.restart(down_s=0.5)
        tapper.join(120)
        assert done.is_set()
        assert_exactly_once(db_url, readers, 250)
        assert worker.alive(), worker.log()[-2000:]
    finally:
        for r in readers:
            r.stop()


def test_worker_sigkilled_mid_batch_and_restarted(setup, tmp_path):
    db_url, broker, worker = setup
    register_devices(db_url, [f"chaos-{i:02d}" for i in range(10)])
    worker.start()
    readers = start_readers(10, broker, tmp_path)
    done = threading.Event()
    tapper = threading.Thread(target=tap_all, args=(readers, 200, 0.02, done))
    try:
        tapper.start()
        rng = random.Random(7)
        kills = 0
        while not done.is_set() or kills < 3:
            time.sleep(rng.uniform(0.3, 1.2))
            worker.kill()
            kills += 1
            worker.start()
        tapper.join(60)
        assert kills >= 3
        assert_exactly_once(db_url, readers, 200)
    finally:
        for r in readers:
            r.stop()


def test_reader_killed_mid_write_loses_at_most_the_record_being_written(setup, tmp_path):
    db_url, broker, worker = setup
    devices = ["power-1", "power-2"]
    register_devices(db_url, devices)
    worker.start()
    tap_log = tmp_path / "taps.log"
    argv = [sys.executable, "-m", "tools.cli", "device", "sim", "--broker",
            f"{broker.host}:{broker.port}", "--devices", ",".join(devices), "--journal-dir",
            str(tmp_path / "flash"), "--taps", "300", "--tap-interval", "0.002",
            "--tap-log", str(tap_log), "--ack-timeout", "2"]
    kills = 0
    progress = []
    for _ in range(4):  # power cuts while the journal is being written
        proc = subprocess.Popen(argv, cwd=ROOT)
        before = _lines(tap_log)
        wait_until(lambda: _lines(tap_log) > before, 20, interval=0.01, what="taps under way")
        time.sleep(random.uniform(0.05, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            progress.append(_lines(tap_log))
    proc = subprocess.Popen(argv, cwd=ROOT)  # the last boot runs to the end
    assert proc.wait(120) == 0
    logged: dict[str, set[int]] = {d: set() for d in devices}
    for line in tap_log.read_text().splitlines():
        device, seq, _ = line.split()
        logged[device].add(int(seq))
    for d in devices:
        seqs = stored_seqs(db_url, d)
        assert sorted(seqs) == list(range(1, 301)), f"{d}: gap-free and stored once"
        assert logged[d] <= set(seqs), "every tap that got feedback is stored"
        assert len(seqs) - len(logged[d]) <= kills, "at most the record being written per cut"
    assert kills >= 3 and progress[0] < 2 * 300, f"cut while tapping: {progress}"


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


class ThrowawayPostgres:
    """A PostgreSQL cluster of the test's own (Debian's initdb and pg_ctl, run as the
    `postgres` user), on a free loopback port, so that the test may stop and start it."""

    def __init__(self) -> None:
        import glob
        import pwd
        import tempfile

        from tools.broker import free_port

        # not under pytest's tmp_path: root's 0700 folders are closed to the postgres user
        root = Path(tempfile.mkdtemp(prefix="tg-pg-"))
        self.root = root
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        assert bins, "Debian's postgresql is not installed (pg_ctl)"
        self.bin = Path(bins[-1]).parent
        self.dir, self.port = root / "pgdata", free_port()
        pw = pwd.getpwnam("postgres")
        import os
        os.chown(root, pw.pw_uid, pw.pw_gid)
        self._as_postgres([str(self.bin / "initdb"), "-D", str(self.dir), "-A", "trust",
                           "-U", "postgres", "--no-sync"])
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def _as_postgres(argv: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                       capture_output=True, timeout=120)

    def start(self) -> None:
        self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.dir), "-w", "-l",
                           str(self.dir.parent / "pg.log"), "-o",
                           f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                           "-c fsync=off", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.dir), "-w", "-m", mode,
                           "stop"])

    def remove(self) -> None:
        import shutil

        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.mark.postgres
def test_postgres_restarted_in_the_middle_of_ingest(tmp_path):
    """Finding "fuzzed" (issue #14, item 11): the database restarted (immediate stop: every
    connection cut) while taps flow through the worker: 0 lost, 0 duplicated."""
    pg = ThrowawayPostgres()
    pg.start()
    broker = Broker("mosquitto", workdir=tmp_path / "broker").start()
    worker = WorkerProcess(pg.url, broker.host, broker.port, tmp_path / "worker.log")
    readers = []
    try:
        ids = [f"pgchaos-{i:02d}" for i in range(6)]
        register_devices(pg.url, ids)
        worker.start()
        readers = start_readers(6, broker, tmp_path, prefix="pgchaos")
        done = threading.Event()
        tapper = threading.Thread(target=tap_all, args=(readers, 120, 0.05, done))
        tapper.start()
        wait_until(lambda: count_events(pg.url)[0] > 50, 60, what="events stored")
        pg.stop("immediate")  # a crash: connections cut mid-transaction
        time.sleep(2)
        pg.start()
        tapper.join(120)
        assert done.is_set()
        assert_exactly_once(pg.url, readers, 120)
        assert worker.alive(), worker.log()[-2000:]
        assert "not acked, their devices will resend" in worker.log(), \
            "the outage was not felt: restart earlier"
    finally:
        for r in readers:
            r.stop()
        worker.stop()
        broker.stop()
        pg.remove()
