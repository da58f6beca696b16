"""`telegest bench fleet`: N virtual devices on the fleet's workers, through a real broker.

In one run: the broker side (`--broker mosquitto`: one mosquitto on a free loopback port, no
connection cap, the file limit raised to the hard limit; `--broker cluster`: `--nodes` NATS
servers as one cluster with their MQTT gateways, tools.cluster), a database of N reader homes
(tools.bench.push.seed_homes), `--workers` fleet worker processes (fleet.worker.IngestWorker:
ingest, alerts, planning push by the lease holder; in NATS mode on the cluster), and the devices
in load processes of at most `--per-process` each (tools.bench.fleet_devices: source addresses
spread over 127.0.0.0/8, paced connects, errors counted by kind). Every device sends health
every `health_every` s (evenly spread); a sample sends a clock event at a low rate, timed from
publish to the fleet's ack on down/ack (tap to stored: the ack goes out after the commit). At
the end the organisation's tolerance changes, so every device's planning changes: push_all_s
is the time until every connected device has the new config. Prints one JSON object.

When the devices cannot all connect, the run stops there with one line (how many connected,
the failures by kind, and why) and exit code 2: never a traceback per connection.
"""
from __future__ import annotations

import contextlib
import heapq
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from tools.bench.fleet_devices import LoadSpec, Shared, load_main
from tools.errors import TelegestError

_PER_PROCESS = 5000  # devices per load process (each holds one descriptor per device)
_CONNECT_RATE = 1500  # new connections per second, all load processes together
_INFLIGHT = 96  # handshakes at once per broker listener, all load processes together
_TAPS_PER_S = 5.0  # clock events per second, all load processes together
_STALL_S = 60.0  # the connect phase gives up when no device settles for this long


def raise_file_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@contextlib.contextmanager
def inherited_file_limit(limit: int | None):
    """The processes started inside get this soft file limit (as on a smaller machine: the
    tests see a broker refuse at small N); ours comes back after. (prlimit on the broker's pid
    would need CAP_SYS_RESOURCE: mosquitto started as root runs as its own user.)"""
    if not limit:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- the broker side ----------------------------------------------------------------------------
class MosquittoSide:
    """One mosquitto: every device and worker on its one listener."""

    name = "mosquitto"

    subscriptions = ("down/#",)  # as the firmware
    sub_qos = 1

    def __init__(self, work: Path, file_limit: int | None = None) -> None:
        self.work, self.file_limit = work, file_limit
        self.broker = None

    def start(self) -> "MosquittoSide":
        from tools.broker import Broker

        with inherited_file_limit(self.file_limit):
            self.broker = Broker("mosquitto", workdir=self.work / "broker",
                                 purpose="the fleet bench").start()
        return self

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(self.broker.host, self.broker.port)]

    def worker_env(self, index: int) -> dict[str, str]:
        return {"TELEGEST_MQTT_HOST": self.broker.host,
                "TELEGEST_MQTT_PORT": str(self.broker.port)}

    def pending(self) -> int | None:
        return None  # the workers' queues are the backlog (paho's thread fills them)

    def pids(self) -> list[int]:
        return [self.broker.proc.pid] if self.broker and self.broker.proc else []

    @property
    def log(self) -> str:
        if self.broker is None:
            return "?"
        log = self.broker.log_path  # absent when mosquitto, started as root, runs as its user
        return str(log if log.exists() else log.with_suffix(".out"))

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()


class ClusterSide:
    """`nodes` NATS servers as one cluster (tools.cluster.Cluster); device k connects to node
    k % nodes, worker i to node i % nodes (MQTT for what goes down, the others next), and the
    workers run in NATS mode: the up messages through the JetStream consumer that all share
    (fleet.nats_transport)."""

    name = "cluster"
    # as the virtual reader on a cluster: NATS 2.9.10 hands a retained message to a new '#'
    # subscription only about half of the time (docs/protocol.md)
    subscriptions = ("down/+", "down/config/+")
    # NATS 2.9 makes every QoS 1 subscription a JetStream consumer, each created through the
    # cluster's meta group: 50,000 devices subscribing at QoS 1 could not connect (timeouts,
    # docs/scaling.md). What the fleet sends down goes at QoS 0 there (fleet.worker), so a
    # QoS 1 subscription brings a device nothing: acks are end to end, configs retained.
    sub_qos = 0

    def __init__(self, work: Path, nodes: int, file_limit: int | None = None) -> None:
        self.work, self.nodes, self.file_limit = work, nodes, file_limit
        self.cluster = None
        self.probe: JetStreamProbe | None = None

    def start(self) -> "ClusterSide":
        from tools.cluster import Cluster

        with inherited_file_limit(self.file_limit):
            self.cluster = Cluster(self.nodes, workdir=self.work / "cluster").start(timeout=60)
        return self

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return list(self.cluster.mqtt_addresses)

    def worker_env(self, index: int) -> dict[str, str]:
        urls, mqtt = list(self.cluster.nats_urls), list(self.cluster.mqtt_addresses)
        k = index % len(urls)
        return {"TELEGEST_NATS_URLS": ",".join(urls[k:] + urls[:k]),
                "TELEGEST_MQTT_HOST": mqtt[k][0], "TELEGEST_MQTT_PORT": str(mqtt[k][1]),
                "TELEGEST_MQTT_BROKERS": ",".join(f"{h}:{p}" for h, p in mqtt[k:] + mqtt[:k])}

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.cluster.nodes if n.proc is not None]

    def pending(self) -> int | None:
        """The JetStream consumer's messages not yet handed to a worker or not yet acked."""
        if self.probe is None:
            self.probe = JetStreamProbe(list(self.cluster.nats_urls))
        return self.probe.pending()

    @property
    def log(self) -> str:
        return str(self.work / "cluster" / "node*" / "nats.log")

    def stop(self) -> None:
        try:
            if self.probe is not None:
                self.probe.close()
        finally:
            if self.cluster is not None:
                self.cluster.stop()


class JetStreamProbe:
    """Asks the cluster for the fleet consumer's pending messages (nats-py, its own loop)."""

    def __init__(self, urls: list[str]) -> None:
        import asyncio

        import nats

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="bench-jetstream-probe")
        self._thread.start()
        self._nc = self._call(nats.connect(servers=urls, name="bench-probe",
                                           max_reconnect_attempts=-1, connect_timeout=2))

    def _call(self, coro, timeout: float = 10.0):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def pending(self) -> int | None:
        from fleet.nats_transport import CONSUMER, STREAM

        try:
            info = self._call(self._nc.jetstream(timeout=2).consumer_info(STREAM, CONSUMER), 3)
        except Exception:  # noqa: BLE001 - no quorum for a moment: no sample
            return None
        return int(info.num_pending) + int(info.num_ack_pending)

    def close(self) -> None:
        try:
            self._call(self._nc.close(), 5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def process_usage(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds, resident MB) of these processes, summed (from /proc)."""
    cpu = rss = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            rss += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, IndexError, ValueError):
            continue
    return cpu, rss


# -- the fleet workers, each in its own process -------------------------------------------------
def _watch_gc() -> dict:
    """The worker's garbage collections: how many of the oldest generation, and the longest
    pause of each generation (ms), a collection holding every thread of the process."""
    import gc

    pauses = {"full": 0, "max_ms_0": 0.0, "max_ms_1": 0.0, "max_ms_2": 0.0}
    began = [0.0]

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - began[0]) * 1000
        g = info["generation"]
        pauses[f"max_ms_{g}"] = round(max(pauses[f"max_ms_{g}"], ms), 1)
        pauses["full"] += g == 2

    gc.callbacks.append(watch)
    return pauses


def _worker_main(index: int, db_url: str, env: dict, stats, stop) -> None:
    raise_file_limit()
    os.environ.update(env)
    try:
        from fleet.config import Settings
        from fleet.worker import IngestWorker, own_process

        own_process()
        pauses = _watch_gc()
        w = IngestWorker(Settings(database_url=db_url),
                         client_id=f"bench-worker-{index}-{os.getpid()}").start()
    except BaseException as e:  # noqa: BLE001 - reported to the parent as one line
        stats.put({"index": index, "error": f"{type(e).__name__}: {e}"})
        return
    while not stop.wait(0.5):
        pushed = w.pusher.counts["pushed"] if w.pusher else 0
        mqtt_up = bool(w._client and w._client.is_connected())
        ru = resource.getrusage(resource.RUSAGE_SELF)
        stats.put({"index": index, "t": time.time(), "health": w.counts["health"],
                   "cpu": ru.ru_utime + ru.ru_stime,
                   "stored": w.stored, "messages": w.counts["messages"],
                   "queue": w.queue.qsize(), "pushed": pushed, "errors": w.counts["errors"],
                   "gc": dict(pauses), "slowest_clock": w.trace.slowest(),
                   # NATS mode: the down link (MQTT) and the JetStream consumer
                   "connected": mqtt_up and (w.source is None or w.source.ready.is_set())})
    w.stop()


class Workers:
    """The worker processes and their latest samples (summed over the workers)."""

    def __init__(self, ctx, count: int, db_url: str, side) -> None:
        self.stats, self.stop_event = ctx.Queue(), ctx.Event()
        self.latest: dict[int, dict] = {}
        self.procs = [ctx.Process(target=_worker_main, name=f"fleet-worker-{i}",
                                  args=(i, db_url, side.worker_env(i), self.stats,
                                        self.stop_event))
                      for i in range(count)]

    def start(self) -> None:
        for p in self.procs:
            p.start()

    def poll(self) -> dict | None:
        """Drains the samples; the sum over the workers once each has reported."""
        while not self.stats.empty():
            s = self.stats.get()
            if "error" in s:
                raise TelegestError(f"bench fleet: fleet worker {s['index']} did not start: "
                                    f"{s['error']}")
            self.latest[s["index"]] = s
        for i, p in enumerate(self.procs):
            if not p.is_alive() and p.exitcode is not None and not self.stop_event.is_set():
                raise TelegestError(f"bench fleet: fleet worker {i} exited "
                                    f"(code {p.exitcode})")
        if len(self.latest) < len(self.procs):
            return None
        total = {k: sum(s[k] for s in self.latest.values())
                 for k in ("health", "stored", "messages", "queue", "pushed", "errors", "cpu")}
        total["t"] = min(s["t"] for s in self.latest.values())
        total["connected"] = all(s["connected"] for s in self.latest.values())
        return total

    def stop(self) -> None:
        self.stop_event.set()
        for p in self.procs:
            p.join(60)
            if p.is_alive():
                p.kill()


# -- the run --------------------------------------------------------------------------------
def _wait(pred, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step)
    raise TelegestError(f"bench fleet: timed out waiting for {what}")


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, math.ceil(0.99 * len(s)) - 1)], 3)


_WHY = {
    "closed": "the broker closed new connections before its CONNACK",
    "timeout": "the broker did not answer CONNECT in time (overloaded, or out of descriptors)",
    "ECONNREFUSED": "nothing accepts connections there (the broker is down or its backlog "
                    "is full)",
    "ECONNRESET": "the broker reset new connections",
    "EADDRNOTAVAIL": "no ephemeral port left for a source address (lower --per-address)",
    "EMFILE": "a load process ran out of descriptors (lower --per-process)",
}


def failure_line(n: int, connected: int, failed: int, errors: Counter, side_name: str,
                 procs: int, broker_limit: int, attempts: int, log: str) -> str:
    """The one line a run that cannot connect its devices ends with: what, how many, why."""
    kinds = ", ".join(f"{v:,} {k}" for k, v in errors.most_common(4)) or "no error counted"
    top = errors.most_common(1)[0][0] if errors else ""
    why = _WHY.get(top, f"the broker answered {top}" if top.startswith("connack") else
                   "see the broker's log")
    if top in ("closed", "timeout", "ECONNRESET") and n / procs >= broker_limit * 0.9:
        why = (f"one broker process holds fewer devices than its file limit "
               f"({broker_limit:,} descriptors); {side_name} gives {procs} such "
               f"process{'es' if procs > 1 else ''}: use --broker cluster with more nodes")
    return (f"bench fleet: {connected:,} of {n:,} devices connected to {side_name} "
            f"({procs} broker process{'es' if procs > 1 else ''}, file limit "
            f"{broker_limit:,}); {failed:,} gave up after {attempts} attempts "
            f"({kinds}): {why} (log: {log})")


def _args(args) -> SimpleNamespace:
    g = lambda name, default: getattr(args, name, None) or default  # noqa: E731
    return SimpleNamespace(
        devices=int(args.devices), json=bool(getattr(args, "json", False)),
        health_every=float(g("health_every", 60)), seconds=float(g("seconds", 120)),
        db=getattr(args, "db", None), broker=g("broker", "mosquitto"),
        nodes=int(g("nodes", 3)), workers=int(g("workers", 1)),
        per_process=int(g("per_process", _PER_PROCESS)),
        per_address=int(getattr(args, "per_address", None) if getattr(
            args, "per_address", None) is not None else 200),
        connect_rate=float(g("connect_rate", _CONNECT_RATE)),
        attempts=int(g("attempts", 3)), connect_timeout=float(g("connect_timeout", 20)),
        broker_file_limit=getattr(args, "broker_file_limit", None),
        push_timeout=float(g("push_timeout", 180)),
        sub_qos=getattr(args, "sub_qos", None), keep=bool(getattr(args, "keep", False)))


def run_bench_fleet(args) -> int:
    """args: devices, json (print only the JSON), health_every (s, default 60), seconds (the
    measured window, default 120), db (URL; default a temporary SQLite file), broker
    (mosquitto or cluster), nodes (cluster), workers, per_process, per_address (devices per
    source address, 0: no bind), connect_rate (per second, in all), attempts, connect_timeout,
    broker_file_limit (lower the broker processes' file limit: a refusal at small N), keep
    (the run's folder stays: the nodes' logs)."""
    from tools.bench.push import seed_homes

    o = _args(args)
    n = o.devices
    if o.broker not in ("mosquitto", "cluster"):
        raise TelegestError(f"bench fleet: --broker {o.broker!r}: mosquitto or cluster")
    say = (lambda *a: None) if o.json else (lambda *a: print("bench fleet:", *a,
                                                             file=sys.stderr, flush=True))
    t_begin = time.time()
    load_start = os.getloadavg()
    nofile = raise_file_limit()
    work = Path(tempfile.mkdtemp(prefix="tg-bench-fleet-"))
    db_url = o.db or f"sqlite:///{work / 'fleet.db'}"
    prefix = f"fb{int(time.time()) % 100000}-"
    side = (MosquittoSide(work, o.broker_file_limit) if o.broker == "mosquitto"
            else ClusterSide(work, o.nodes, o.broker_file_limit))
    say(f"{n} devices on {o.broker}{f' ({o.nodes} nodes)' if o.broker == 'cluster' else ''}, "
        f"{o.workers} worker(s), health every {o.health_every:g} s, {o.seconds:g} s measured, "
        f"{db_url.split('://')[0]}, file limit {nofile}, load {load_start[0]:.2f}")
    seed_homes(db_url, prefix, n, 2)
    idents = [f"{prefix}{i:05d}" for i in range(n)]
    ctx = mp.get_context("spawn")
    workers: Workers | None = None
    loads: list = []
    shareds: list[Shared] = []
    results = ctx.Queue()
    outs: list[dict] = []
    ok = False
    try:
        side.start()
        brokers = side.addresses
        broker_limit = o.broker_file_limit or nofile
        workers = Workers(ctx, o.workers, db_url, side)
        workers.start()
        _wait(lambda: (s := workers.poll()) is not None and s["connected"], 60,
              "the fleet workers to connect")
        say(f"worker pids {' '.join(str(p.pid) for p in workers.procs)} (py-spy record -p)")
        time.sleep(1.0)  # their subscriptions
        procs = max(1, math.ceil(n / o.per_process))
        inflight = max(4, _INFLIGHT * len(brokers) // procs)
        for i in range(procs):
            numbers = list(range(i, n, procs))
            spec = LoadSpec(index=i, idents=[idents[k] for k in numbers], numbers=numbers,
                            brokers=brokers, health_every=o.health_every,
                            taps_per_s=_TAPS_PER_S / procs,
                            connect_rate=o.connect_rate / procs, inflight=inflight,
                            attempts=o.attempts, connect_timeout_s=o.connect_timeout,
                            per_address=o.per_address, subscriptions=side.subscriptions,
                            sub_qos=side.sub_qos if o.sub_qos is None else o.sub_qos)
            shared = Shared(ctx)
            p = ctx.Process(target=load_main, args=(spec, shared, results),
                            name=f"bench-devices-{i}")
            p.start()
            loads.append(p)
            shareds.append(shared)

        def total(attr: str) -> int:
            return sum(getattr(s, attr).value for s in shareds)

        # the connect phase: until every device connected or gave up, or nothing moves
        t_conn = time.time()
        last, moved, said = -1, time.monotonic(), time.monotonic()
        while (settled := total("settled")) < n:
            if settled != last:
                last, moved = settled, time.monotonic()
            elif time.monotonic() - moved > _STALL_S + o.connect_timeout:
                break
            if not all(p.is_alive() for p in loads):
                break
            workers.poll()
            if time.monotonic() - said > 5:
                said = time.monotonic()
                say(f"{total('connected'):,} connected, {total('failed'):,} gave up, "
                    f"{time.time() - t_conn:.0f} s")
            time.sleep(0.2)
        connect_s = time.time() - t_conn
        connected = total("connected")
        if connected < n:  # stop the load now: their counts make the one line
            for s in shareds:
                s.end_at.value = time.time()
            outs = _collect(results, loads, 60)
            errors = Counter()
            for out in outs:
                errors.update(out.get("connect_errors", {}))
            broken = [out["error"] for out in outs if "error" in out]
            if broken:
                raise TelegestError(f"bench fleet: a load process stopped: {broken[0]}")
            raise TelegestError(failure_line(
                n, connected, total("failed") or n - connected, errors, side.name,
                len(brokers), broker_limit, o.attempts, side.log))
        say(f"{connected:,} connected in {connect_s:.1f} s; the initial planning push")
        _wait(lambda: (workers.poll() or {}).get("pushed", 0) >= n, 600,
              "the initial planning push")
        time.sleep(2.0)  # its last configs on their way
        start_at = time.time() + 1.0
        for s in shareds:
            s.start_at.value = start_at
        while time.time() < start_at:
            time.sleep(0.1)
        samples: list[dict] = []
        say(f"measuring {o.seconds:g} s")
        broker_cpu0, _ = process_usage(side.pids())
        t_end = time.time() + o.seconds
        while time.time() < t_end:
            s = workers.poll()
            if s is not None:
                pending = side.pending()
                s["queue"] += pending or 0
                samples.append(s)
            time.sleep(0.5)
        broker_cpu1, broker_rss = process_usage(side.pids())
        first, last = samples[0], samples[-1]
        window_s = max(1e-9, last["t"] - first["t"])
        handled = max(1, last["messages"] - first["messages"])
        peak = max(connected, total("connected"))
        health_per_s = (last["health"] - first["health"]) / max(1e-9, last["t"] - first["t"])
        # the planning push: every device's planning changes with the tolerance
        import sqlalchemy as sa
        engine = sa.create_engine(db_url)
        def stored() -> int:  # the fleet's count of configs the broker stored
            return (workers.poll() or last)["pushed"]

        stored0 = stored()
        with engine.begin() as c:
            push_t0 = time.time()
            for s in shareds:
                s.push_t0.value = push_t0
            c.execute(sa.text("UPDATE organisations SET tolerance_min = tolerance_min + 1 "
                              "WHERE name = :name"), {"name": f"bench agency {prefix}"})
        engine.dispose()
        say("planning changed; waiting for every device to have it")
        deadline = time.time() + o.push_timeout
        while total("pushed") < total("connected") and time.time() < deadline:
            workers.poll()
            time.sleep(0.2)
        # on a cluster the devices have it before the broker stored every retained copy
        # (fleet.push, "Live first"): how long until the fleet counted all of them stored;
        # paced (fleet.down_path.RATE a second), so given that long more than the push
        from fleet.down_path import RATE
        deadline = max(deadline, push_t0 + o.push_timeout + connected / RATE)
        while stored() < stored0 + connected and time.time() < deadline:
            time.sleep(0.2)
        stored_all = stored() >= stored0 + connected
        push_stored_s = round(time.time() - push_t0, 2) if stored_all else None
        for s in shareds:
            s.end_at.value = time.time() + 2.0  # the taps of the push window, acked
        outs = _collect(results, loads, 120)
        broken = [out["error"] for out in outs if "error" in out]
        if broken:
            raise TelegestError(f"bench fleet: a load process stopped: {broken[0]}")
        end = workers.poll() or last
        pushed_to = sum(out["push_seen"] for out in outs)
        lasts = [out["push_last"] for out in outs if out["push_last"]]
        push_live_s = (max(lasts) - push_t0) if lasts else float("inf")
        third = max(1, len(samples) // 3)
        # the start: the first sample, or the first third's median if lower (one batch in
        # flight is not a backlog); it grew when the last third's median is above twice that
        q_start = min(first["queue"], statistics.median(s["queue"] for s in samples[:third]))
        q_late = statistics.median(s["queue"] for s in samples[-third:])
        taps = [x for out in outs for x in out["latencies"]]
        connected_end = sum(out["connected_end"] for out in outs)
        errors, dropped, loop_errors = Counter(), Counter(), Counter()
        for out in outs:
            errors.update(out["connect_errors"])
            dropped.update(out["dropped"])
            loop_errors.update(out["loop_errors"])
        result = {
            "devices": n, "connected": peak, "connected_end": connected_end,
            "connect_s": round(connect_s, 1),
            "connect_failed": sum(out["failed"] for out in outs),
            "connect_errors": dict(errors), "dropped": dict(dropped),
            "health_every_s": o.health_every,
            "health_per_s": round(health_per_s, 1),
            "health_expected_per_s": round(n / o.health_every, 1),
            # over the measured window (later, the load's own wills arrive)
            "backlog": {"start": first["queue"], "end": last["queue"],
                        "max": max(s["queue"] for s in samples),
                        "grew": q_late > max(100, 2 * q_start)},
            "push_all_s": round(max(lasts) - push_t0, 2)
            if lasts and pushed_to >= connected_end else None,
            "push_reached": pushed_to,
            # the retained copies stored by the broker (devices connecting later get them)
            "push_stored_s": push_stored_s,
            "p99_tap_to_stored_s": _p99([lat for _, lat in taps]),
            # the same, apart: the taps of the measured window, those of the planning push
            "p99_tap_to_stored_window_s": _p99([lat for t, lat in taps if t < push_t0]),
            "p99_tap_to_stored_push_s": _p99([lat for t, lat in taps if t >= push_t0]),
            # the push apart: while the live copies go out, then while the retained ones do
            "p99_tap_to_stored_live_s": _p99([lat for t, lat in taps
                                              if push_t0 <= t < push_t0 + push_live_s]),
            "p99_tap_to_stored_retained_s": _p99([lat for t, lat in taps
                                                  if t >= push_t0 + push_live_s]),
            "taps": len(taps),
            # where the tail is: the slowest taps, seconds after the window's start (the
            # push began at push_at_s), and each worker's garbage collections (full ones, the
            # longest pause of each generation in ms: a pause holds all its threads)
            "slowest_taps": [[round(t - start_at, 1), round(lat, 3)]
                             for t, lat in heapq.nlargest(8, taps, key=lambda x: x[1])],
            "push_at_s": round(push_t0 - start_at, 1),
            "worker_gc": [s.get("gc") for _, s in sorted(workers.latest.items())],
            # the workers' slowest clock messages, stage by stage (fleet.tap_trace): `at`
            # seconds after the window's start, JetStream to the worker's queue, to the
            # commit, to the ack handed down; and each load process's longest loop stall
            "worker_slowest_clock": _slowest_clock(workers.latest, start_at),
            "load_stalls": [[round(t - start_at, 1), round(gap, 2)] for t, gap in heapq.nlargest(
                8, (st for out in outs for st in out.get("stalls", [])), key=lambda x: x[1])],
            "taps_unacked": sum(out["tap_lost"] for out in outs),
            "worker_errors": end["errors"], "loop_errors": dict(loop_errors),
            # what the window cost: the workers' CPU per message they stored (health and
            # taps; the state messages too), the brokers' CPU share and resident memory
            "worker_cpu_ms_per_message": round(1000 * (last["cpu"] - first["cpu"]) / handled,
                                               3),
            "worker_cpu_share": round((last["cpu"] - first["cpu"]) / window_s, 3),
            "broker_cpu_share": round((broker_cpu1 - broker_cpu0) / o.seconds, 3),
            "broker_rss_mb": round(broker_rss),
            "broker": o.broker, "broker_processes": len(brokers), "workers": o.workers,
            "subscribe_qos": spec.sub_qos,
            "load_processes": len(loads), "source_addresses": _addresses(n, o.per_address),
            "file_limit": nofile, "database": db_url.split("://")[0],
            "loadavg_start": round(load_start[0], 2),
            "loadavg_end": round(os.getloadavg()[0], 2),
            "duration_s": round(time.time() - t_begin, 1),
            "workdir": str(work) if o.keep else None,  # --keep: the nodes' logs are there
        }
        ok = True
    finally:  # every step, whatever the one before did (an interrupted run leaves nothing)
        for s in shareds:
            s.end_at.value = s.end_at.value or time.time()
        try:
            deadline = time.monotonic() + 30
            for p in loads:
                p.join(max(0.1, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
        finally:
            try:
                if workers is not None:
                    workers.stop()
            finally:
                side.stop()
                if ok and not o.keep:
                    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    met = (result["connected"] >= n and not result["backlog"]["grew"]
           and result["push_all_s"] is not None)
    return 0 if met else 1


def _slowest_clock(latest: dict, since: float) -> list[dict]:
    """The 8 slowest clock messages of all workers, `at` made relative to `since`."""
    rows = [dict(r, worker=i, at=round(r["at"] - since, 1))
            for i, s in latest.items() for r in s.get("slowest_clock", [])]
    return heapq.nlargest(8, rows, key=lambda r: r["total_s"])


def _addresses(n: int, per_address: int) -> int:
    return math.ceil(n / per_address) if per_address else 1


def _collect(results, loads: list, timeout: float) -> list[dict]:
    """Every load process's figures (an error entry for one that died without any)."""
    import queue as _queue

    outs: list[dict] = []
    deadline = time.time() + timeout
    while len(outs) < len(loads) and time.time() < deadline:
        try:
            outs.append(results.get(timeout=0.5))
        except _queue.Empty:
            if not any(p.is_alive() for p in loads) and results.empty():
                break
    seen = {out.get("index") for out in outs}
    for i, p in enumerate(loads):
        if i not in seen:
            outs.append({"index": i, "error": f"exited without figures (code {p.exitcode})"})
    return outs


if __name__ == "__main__":
    raise SystemExit(run_bench_fleet(SimpleNamespace(
        devices=int(sys.argv[1]) if len(sys.argv) > 1 else 1000, json=False,
        health_every=float(sys.argv[2]) if len(sys.argv) > 2 else 60,
        seconds=float(sys.argv[3]) if len(sys.argv) > 3 else 120, db=None)))
