"""The device side of `telegest bench fleet`: one load process of virtual devices.

Each load process is one asyncio loop of minimal MQTT 3.1.1 clients (tools.bench.aiomqtt_lite)
and stays well under the file limit (a process may hold at most 20,000 descriptors here).
Device k connects to broker `k % len(brokers)` from its own loopback source address
(`source_address`: 127.0.0.0/8 has 16 million of them, so 50,000 connections never run out of
ephemeral ports), paced: at most `connect_rate` new connections a second and `inflight`
handshakes at once, so that the brokers' listen backlogs never overflow (a dropped SYN costs a
device a one-second retransmission, then three). A failed connect is retried after a pause,
`attempts` times in all; every failure is counted by kind (ECONNREFUSED, timeout, closed,
connack_5...), never printed: the parent turns the counts into one line.

The parent drives the phases through shared values: the load connects, then waits for
`start_at` (health and taps begin), then for `end_at`. Figures go back in one dict.
"""
from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections import Counter
from dataclasses import dataclass, field

TAP_DEVICES = 50  # devices per load process that also send clock events
STALL_S = 0.3  # the load loop sleeps 50 ms: back later than this is a stall (load_stalls)


@dataclass
class LoadSpec:
    """What one load process does; picklable (spawned processes)."""

    index: int
    idents: list[str]
    numbers: list[int]  # each device's number in the whole fleet (its source address)
    brokers: list[tuple[str, int]]  # device k connects to brokers[numbers[k] % len]
    health_every: float = 60.0
    taps_per_s: float = 1.0
    connect_rate: float = 1000.0  # new connections per second, this process
    inflight: int = 32  # handshakes (TCP + CONNECT/CONNACK) at once, this process
    attempts: int = 3
    retry_after_s: float = 2.0
    connect_timeout_s: float = 20.0
    per_address: int = 200  # devices per source address; 0: no bind, the kernel's choice
    keepalive: int = 60
    subscriptions: tuple[str, ...] = ("down/#",)  # under tg/v1/<ident>/
    sub_qos: int = 1
    extra: dict = field(default_factory=dict)


def source_address(number: int, per_address: int) -> str:
    """The loopback address device `number` connects from: `per_address` devices share one,
    from 127.1.1.1 on (never .0 or .255, never 127.0.x.x where the services listen)."""
    a = number // max(1, per_address)
    return f"127.{1 + a // 64516}.{1 + (a // 254) % 254}.{1 + a % 254}"


def health_payload(bat: int = 80) -> bytes:
    now = int(time.time())
    return (b'{"now":%d,"fw":"0.1.0","up":%d,"heap":41000,"rssi":-60,"bat":%d,"jd":0,'
            b'"jfull":false,"rd":"ok","tq":"synced","cfg":1}' % (now, now % 100000, bat))


def clock_payload(seq: int) -> bytes:
    ts = int(time.time())
    return json.dumps({"now": ts, "events": [{
        "seq": seq, "badge": "04A1B2C3D4E5F6", "dir": "in" if seq % 2 else "out",
        "method": "nfc", "ts": ts, "tq": "synced"}]}, separators=(",", ":")).encode()


class Shared:
    """The values a load process shares with the parent (multiprocessing.Value objects):
    `connected` now, `failed` (gave up), `settled` (connected or gave up), `pushed` (devices
    that saw the new planning), and the parent's `start_at`, `end_at` and `push_t0` (0 until
    set)."""

    def __init__(self, ctx) -> None:
        self.connected = ctx.Value("i", 0, lock=False)
        self.failed = ctx.Value("i", 0, lock=False)
        self.settled = ctx.Value("i", 0, lock=False)  # connected or given up
        self.pushed = ctx.Value("i", 0, lock=False)
        self.start_at = ctx.Value("d", 0.0, lock=False)
        self.end_at = ctx.Value("d", 0.0, lock=False)
        self.push_t0 = ctx.Value("d", 0.0, lock=False)


async def run_load(spec: LoadSpec, shared: Shared) -> dict:
    from tools.bench.aiomqtt_lite import LiteClient, error_kind

    loop = asyncio.get_running_loop()
    loop_errors: Counter = Counter()
    # anything asyncio would print (a callback's exception, a task nobody awaited): counted
    loop.set_exception_handler(lambda _loop, ctx: loop_errors.update(
        [error_kind(ctx["exception"]) if ctx.get("exception") else "loop"]))
    pending: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    push_seen: dict[str, float] = {}
    config_v: dict[str, int] = {}  # the last config version each device received
    base_v: dict[str, int] | None = None  # the same when the planning changed (push_t0)

    def on_message(c: LiteClient, topic: str, payload: bytes) -> None:
        if topic.endswith("/down/ack"):
            now = time.time()
            try:
                ack = json.loads(payload)["ack"]
            except (ValueError, KeyError, TypeError):
                return
            for key in [k for k in pending if k[0] == c.client_id and k[1] <= ack]:
                sent = pending.pop(key)
                latencies.append((sent, now - sent))
        elif topic.endswith("/down/config") and payload:  # a manifest (parts: down/config/i)
            try:
                v = int(json.loads(payload)["v"])
            except (ValueError, KeyError, TypeError):
                return
            config_v[c.client_id] = v
            if base_v is not None and c.client_id not in push_seen \
                    and v > base_v.get(c.client_id, -1):
                push_seen[c.client_id] = time.time()
                shared.pushed.value = len(push_seen)

    clients = [LiteClient(i, on_message) for i in spec.idents]
    errors: Counter = Counter()
    sem = asyncio.Semaphore(spec.inflight)

    async def connect(c: LiteClient, number: int) -> None:
        host, port = spec.brokers[number % len(spec.brokers)]
        source = source_address(number, spec.per_address) if spec.per_address else None
        for attempt in range(spec.attempts):
            if attempt:
                await asyncio.sleep(spec.retry_after_s * attempt)
            async with sem:
                try:
                    await c.connect(host, port, keepalive=spec.keepalive,
                                    will=(f"tg/v1/{c.client_id}/state", b"offline"),
                                    timeout=spec.connect_timeout_s, source=source)
                    break
                except Exception as e:  # noqa: BLE001 - counted by kind, never printed
                    errors[error_kind(e)] += 1
        else:
            shared.failed.value += 1
            shared.settled.value += 1
            return
        for sub in spec.subscriptions:
            c.subscribe(f"tg/v1/{c.client_id}/{sub}", spec.sub_qos)
        c.publish(f"tg/v1/{c.client_id}/state", b"online", qos=1, retain=True)
        shared.connected.value += 1
        shared.settled.value += 1

    t0 = time.monotonic()
    tasks = []
    for k, (c, number) in enumerate(zip(clients, spec.numbers)):
        wait = t0 + k / spec.connect_rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(connect(c, number)))
    await asyncio.gather(*tasks)
    connect_s = time.monotonic() - t0

    while not shared.start_at.value or time.time() < shared.start_at.value:
        if shared.end_at.value:  # stopped before the measured window (a failed run)
            break
        await asyncio.sleep(0.05)
    start_at = shared.start_at.value or time.time()
    # health: device k at start + k * health_every / n, then every health_every
    n = len(clients)
    sent = taps = 0
    tappers = clients[:TAP_DEVICES]
    seqs = {c.client_id: 0 for c in tappers}
    next_tap = start_at
    k = 0
    stalls: list[tuple[float, float]] = []  # (when, how long) the loop came back late
    was = time.time()
    while not shared.end_at.value or time.time() < shared.end_at.value:
        now = time.time()
        if now - was > STALL_S:
            stalls = heapq.nlargest(8, stalls + [(was, now - was)], key=lambda x: x[1])
        was = now
        due = int((now - start_at) / spec.health_every * n)  # reports due since the start
        while k < due:
            c = clients[k % n]
            if c.connected:
                c.publish(f"tg/v1/{c.client_id}/up/health", health_payload(), qos=0)
                sent += 1
            k += 1
        while spec.taps_per_s and next_tap <= now and tappers:
            c = tappers[taps % len(tappers)]
            taps += 1
            next_tap += 1 / spec.taps_per_s
            if not c.connected:
                continue
            seqs[c.client_id] += 1
            seq = seqs[c.client_id]
            pending[(c.client_id, seq)] = time.time()
            c.publish(f"tg/v1/{c.client_id}/up/clock", clock_payload(seq), qos=1)
        if base_v is None and shared.push_t0.value:
            base_v = dict(config_v)  # a new planning from now on: a higher version
        shared.connected.value = sum(1 for c in clients if c.connected)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # the last acks
    dropped = Counter(c.lost for c in clients if c.lost)
    out = {"index": spec.index, "devices": n, "connect_s": round(connect_s, 2),
           "connect_errors": dict(errors), "failed": shared.failed.value,
           "dropped": dict(dropped), "loop_errors": dict(loop_errors),
           "health_sent": sent, "taps": taps, "latencies": latencies,
           "tap_lost": len(pending), "stalls": stalls,
           "connected_end": sum(c.connected for c in clients),
           "push_seen": len(push_seen),
           "push_last": max(push_seen.values()) if push_seen else None}
    for c in clients:
        c.close()
    await asyncio.sleep(0)  # let the transports close
    return out


def load_main(spec: LoadSpec, shared: Shared, results) -> None:
    """A load process's entry point: its figures, or the one error that stopped it, go back
    on `results`; nothing is printed."""
    from tools.bench.fleet import raise_file_limit

    raise_file_limit()
    try:
        out = asyncio.run(run_load(spec, shared))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as one line
        out = {"index": spec.index, "error": f"{type(e).__name__}: {e}"}
    results.put(out)
