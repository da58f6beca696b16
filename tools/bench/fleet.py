"""`telegest bench fleet`: N virtual devices on one fleet worker, through a real mosquitto.

In one run: a mosquitto on a free loopback port (no connection cap; the file limit raised to
the hard limit), a database of N reader homes (tools.bench.push.seed_homes), ONE fleet worker
process (fleet.worker.IngestWorker: ingest, alerts, planning push), and the devices spread over
a few load processes, each an asyncio loop of minimal MQTT 3.1.1 clients
(tools.bench.aiomqtt_lite) with a retained last will. Every device sends health every
`health_every` s (evenly spread); a sample sends a clock event at a low rate, timed from publish
to the fleet's ack on down/ack (tap to stored: the ack goes out after the commit). At the end
the organisation's tolerance changes, so every device's planning changes: push_all_s is the
time until every connected device has the new config. Prints one JSON object.
"""
from __future__ import annotations

import asyncio
import json
import math
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

_PER_PROCESS = 5000
_CONNECT_RATE = 1500  # connections per second per load process (the broker's listen backlog)
_TAP_DEVICES = 50     # devices per load process that also send clock events


def raise_file_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the fleet worker, in its own process -------------------------------------------------------
def _worker_main(db_url: str, host: str, port: int, stats, stop) -> None:
    raise_file_limit()
    from fleet.worker import IngestWorker

    w = IngestWorker(db_url, host, port).start()
    while not stop.wait(0.5):
        pushed = w.pusher.counts["pushed"] if w.pusher else 0
        stats.put({"t": time.time(), "health": w.counts["health"], "stored": w.stored,
                   "messages": w.counts["messages"], "queue": w.queue.qsize(),
                   "pushed": pushed, "errors": w.counts["errors"],
                   "connected": bool(w._client and w._client.is_connected())})
    w.stop()


# -- virtual devices, one load process ----------------------------------------------------------
def _health(bat: int = 80) -> bytes:
    now = int(time.time())
    return (b'{"now":%d,"fw":"0.1.0","up":%d,"heap":41000,"rssi":-60,"bat":%d,"jd":0,'
            b'"jfull":false,"rd":"ok","tq":"synced","cfg":1}' % (now, now % 100000, bat))


async def _devices(idents: list[str], host: str, port: int, health_every: float, taps_per_s: float,
                   start_at: float, end_at: float, shared: dict, out: dict) -> None:
    from tools.bench.aiomqtt_lite import LiteClient

    pending: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    push_seen: dict[str, float] = {}

    def on_message(c: LiteClient, topic: str, payload: bytes) -> None:
        if topic.endswith("/down/ack"):
            now = time.time()
            try:
                ack = json.loads(payload)["ack"]
            except (ValueError, KeyError):
                return
            for key in [k for k in pending if k[0] == c.client_id and k[1] <= ack]:
                latencies.append(now - pending.pop(key))
        elif topic.endswith("/down/config") and payload:
            t0 = shared["push_t0"].value
            if t0 and c.client_id not in push_seen:
                push_seen[c.client_id] = time.time()

    clients = [LiteClient(i, on_message) for i in idents]
    failed = 0

    async def connect(c: LiteClient) -> None:
        nonlocal failed
        try:
            await c.connect(host, port, keepalive=60,
                            will=(f"tg/v1/{c.client_id}/state", b"offline"))
        except (OSError, ConnectionError, asyncio.TimeoutError):
            failed += 1
            return
        c.subscribe(f"tg/v1/{c.client_id}/down/#", 1)
        c.publish(f"tg/v1/{c.client_id}/state", b"online", qos=1, retain=True)
        shared["connected"].value += 1

    tasks = []
    for k, c in enumerate(clients):
        tasks.append(asyncio.create_task(connect(c)))
        if k % 100 == 99:
            await asyncio.sleep(100 / _CONNECT_RATE)
    await asyncio.gather(*tasks)
    out["failed"] = failed
    while time.time() < start_at:
        await asyncio.sleep(0.05)
    # health: device k at start + k * health_every / n, then every health_every
    n = len(clients)
    sent = taps = 0
    tappers = clients[:_TAP_DEVICES]
    seqs = {c.client_id: 0 for c in tappers}
    next_tap = start_at
    tick = 0.05
    k = 0
    while time.time() < end_at:
        now = time.time()
        due = int((now - start_at) / health_every * n)  # reports due since the start
        while k < due:
            c = clients[k % n]
            if c.connected:
                c.publish(f"tg/v1/{c.client_id}/up/health", _health(), qos=0)
                sent += 1
            k += 1
        while taps_per_s and next_tap <= now and tappers:
            c = tappers[taps % len(tappers)]
            taps += 1
            next_tap += 1 / taps_per_s
            if not c.connected:
                continue
            seqs[c.client_id] += 1
            seq, ts = seqs[c.client_id], int(time.time())
            body = json.dumps({"now": ts, "events": [{
                "seq": seq, "badge": "04A1B2C3D4E5F6", "dir": "in" if seq % 2 else "out",
                "method": "nfc", "ts": ts, "tq": "synced"}]}, separators=(",", ":")).encode()
            pending[(c.client_id, seq)] = time.time()
            c.publish(f"tg/v1/{c.client_id}/up/clock", body, qos=1)
        shared["connected"].value = sum(1 for c in clients if c.connected)
        await asyncio.sleep(tick)
    await asyncio.sleep(1.0)  # the last acks
    out.update({"health_sent": sent, "taps": taps, "latencies": latencies,
                "tap_lost": len(pending), "connected_end": sum(c.connected for c in clients),
                "push_seen": len(push_seen),
                "push_last": max(push_seen.values()) if push_seen else None})
    for c in clients:
        c.close()


def _load_main(idents, host, port, health_every, taps_per_s, start_at, end_at, connected,
               push_t0, results) -> None:
    raise_file_limit()
    out: dict = {}
    asyncio.run(_devices(idents, host, port, health_every, taps_per_s, start_at, end_at,
                         {"connected": connected, "push_t0": push_t0}, out))
    results.put(out)


# -- the run --------------------------------------------------------------------------------
def _drain(stats, samples: list) -> dict | None:
    while not stats.empty():
        samples.append(stats.get())
    return samples[-1] if samples else None


def _wait(pred, timeout: float, what: str, step: float = 0.2):
    from tools.errors import TelegestError
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


def run_bench_fleet(args) -> int:
    """args: devices, json (print only the JSON), health_every (s, default 60), seconds (the
    measured window, default 120), db (URL; default a temporary SQLite file)."""
    from tools.bench.push import seed_homes
    from tools.broker import Broker

    n = int(args.devices)
    health_every = float(getattr(args, "health_every", None) or 60)
    seconds = float(getattr(args, "seconds", None) or 120)
    quiet = bool(getattr(args, "json", False))
    say = (lambda *a: None) if quiet else (lambda *a: print("bench fleet:", *a, file=sys.stderr))
    t_begin = time.time()
    nofile = raise_file_limit()
    work = Path(tempfile.mkdtemp(prefix="tg-bench-fleet-"))
    db_url = getattr(args, "db", None) or f"sqlite:///{work / 'fleet.db'}"
    prefix = f"fb{int(time.time()) % 100000}-"
    say(f"{n} devices, health every {health_every:g} s, {seconds:g} s measured, "
        f"{db_url.split('://')[0]}, file limit {nofile}")
    seed_homes(db_url, prefix, n, 2)
    idents = [f"{prefix}{i:05d}" for i in range(n)]
    broker = Broker("mosquitto", workdir=work / "broker", purpose="the fleet bench").start()
    ctx = mp.get_context("spawn")
    stats, stop, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    samples: list[dict] = []
    worker = ctx.Process(target=_worker_main, args=(db_url, broker.host, broker.port, stats,
                                                    stop), name="fleet-worker")
    loads: list = []
    try:
        worker.start()
        _wait(lambda: (s := _drain(stats, samples)) is not None and s["connected"], 60,
              "the fleet worker to connect")
        time.sleep(1.0)  # its subscriptions
        procs = max(1, math.ceil(n / _PER_PROCESS))
        chunks = [idents[i::procs] for i in range(procs)]
        big = n > 1000
        connect_s = n / (_CONNECT_RATE * procs) + (30 if big else 5)
        start_at = time.time() + connect_s
        end_at = start_at + seconds + (70 if big else 10)  # + the planning push, under load
        counters = [ctx.Value("i", 0) for _ in chunks]
        push_t0 = ctx.Value("d", 0.0)
        taps_per_s = 5.0 / procs
        for chunk, counter in zip(chunks, counters):
            p = ctx.Process(target=_load_main, args=(chunk, broker.host, broker.port,
                                                     health_every, taps_per_s, start_at, end_at,
                                                     counter, push_t0, results))
            p.start()
            loads.append(p)

        def connected() -> int:
            return sum(c.value for c in counters)
        t_conn = time.time()
        _wait(lambda: connected() >= n, connect_s, f"{n} devices to connect", 0.5)
        say(f"{connected()} connected in {time.time() - t_conn:.1f} s; initial planning push")
        _wait(lambda: (_drain(stats, samples) or {}).get("pushed", 0) >= n, 600,
              "the initial planning push")
        while time.time() < start_at:
            time.sleep(0.2)
        peak = connected()
        _drain(stats, samples)
        first = samples[-1]
        say(f"measuring {seconds:g} s")
        time.sleep(seconds)
        last = _drain(stats, samples)
        peak = max(peak, connected())
        window = [s for s in samples if s["t"] >= first["t"]]
        health_per_s = (last["health"] - first["health"]) / (last["t"] - first["t"])
        # the planning push: every device's planning changes with the tolerance
        import sqlalchemy as sa
        engine = sa.create_engine(db_url)
        with engine.begin() as c:
            push_t0.value = time.time()
            c.execute(sa.text("UPDATE organisations SET tolerance_min = tolerance_min + 1 "
                              "WHERE name = :name"), {"name": f"bench agency {prefix}"})
        engine.dispose()
        say("planning changed; waiting for the push and the end of the load")
        outs = [results.get(timeout=end_at - time.time() + 120) for _ in loads]
        end = _drain(stats, samples)
        pushed_to = sum(o["push_seen"] for o in outs)
        lasts = [o["push_last"] for o in outs if o["push_last"]]
        third = max(1, len(window) // 3)
        q_early = max(s["queue"] for s in window[:third])
        q_late = max(s["queue"] for s in window[-third:])
        result = {
            "devices": n, "connected": peak,
            "connect_failed": sum(o["failed"] for o in outs),
            "health_every_s": health_every,
            "health_per_s": round(health_per_s, 1),
            "health_expected_per_s": round(n / health_every, 1),
            # at the end of the measured window (later, the load's own 10,000 wills arrive)
            "backlog": {"end": last["queue"], "max": max(s["queue"] for s in window),
                        "grew": q_late > max(100, 2 * q_early)},
            "push_all_s": round(max(lasts) - push_t0.value, 2)
            if lasts and pushed_to >= peak else None,
            "push_reached": pushed_to,
            "p99_tap_to_stored_s": _p99([x for o in outs for x in o["latencies"]]),
            "taps": sum(len(o["latencies"]) for o in outs),
            "taps_unacked": sum(o["tap_lost"] for o in outs),
            "worker_errors": end["errors"],
            "load_processes": len(loads), "file_limit": nofile,
            "database": db_url.split("://")[0],
            "duration_s": round(time.time() - t_begin, 1),
        }
    finally:
        stop.set()
        for p in loads:
            p.join(30)
            if p.is_alive():
                p.kill()
        worker.join(60)
        if worker.is_alive():
            worker.kill()
        broker.stop()
    print(json.dumps(result))
    return 0 if result["connected"] >= n and not result["backlog"]["grew"] else 1


if __name__ == "__main__":
    raise SystemExit(run_bench_fleet(SimpleNamespace(
        devices=int(sys.argv[1]) if len(sys.argv) > 1 else 1000, json=False,
        health_every=float(sys.argv[2]) if len(sys.argv) > 2 else 60,
        seconds=float(sys.argv[3]) if len(sys.argv) > 3 else 120, db=None)))
