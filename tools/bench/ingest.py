"""`telegest bench ingest`: clock events through a real mosquitto into the database.

In one run: a mosquitto on a free loopback port, the fleet's ingest worker as its own process,
a plain paho QoS 1 subscriber (the yardstick) and a publisher sending pre-built batches from
`--devices` devices as fast as QoS 1 allows. Both consumers get the same messages; the fleet's
rate counts an event only once it is committed and acked. Prints one JSON object.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from tools.broker import Broker
from tools.errors import TelegestError

ROOT = Path(__file__).resolve().parents[2]


def register_devices(db_url: str, devices: list[str]) -> None:
    from fleet.db import make_engine, migrate, session_factory
    from fleet.models import Client, Device, Organisation

    migrate(db_url)
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        org = Organisation(name=f"bench agency {devices[0]}", timezone="Europe/Paris")
        s.add(org)
        s.flush()
        for ident in devices:
            client = Client(organisation_id=org.id, name=f"client of {ident}")
            s.add(client)
            s.flush()
            s.add(Device(ident=ident, kind="reader", organisation_id=org.id,
                         client_id=client.id, status="active"))
        s.commit()
    engine.dispose()


def count_stored(db_url: str, prefix: str) -> tuple[int, int]:
    """(rows, distinct (device, seq)) stored for this run's devices."""
    import sqlalchemy as sa

    mine = ("FROM clock_events e JOIN devices d ON d.id = e.device_id "
            "WHERE d.ident LIKE :p")
    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        rows = c.execute(sa.text(f"SELECT count(*) {mine}"), {"p": prefix + "%"}).scalar_one()
        distinct = c.execute(sa.text(
            f"SELECT count(*) FROM (SELECT DISTINCT e.device_id, e.seq {mine}) x"),
            {"p": prefix + "%"}).scalar_one()
    engine.dispose()
    return int(rows), int(distinct)


class AckWatcher:
    """Follows the fleet's acks; notes when every device's ack covers all it sent."""

    def __init__(self, host: str, port: int, targets: dict[str, int]) -> None:
        self.targets = targets
        self.acked = {d: 0 for d in targets}
        self.done = threading.Event()
        self.t_done: float | None = None
        self.subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-acks",
                             protocol=mqtt.MQTTv311)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_connect = lambda client, *a: client.subscribe("tg/v1/+/down/ack", qos=1)
        self.c.connect(host, port)
        self.c.loop_start()
        self.subscribed.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        device = msg.topic.split("/")[2]
        try:
            ack = int(json.loads(msg.payload)["ack"])
        except (ValueError, KeyError, TypeError):
            return
        if device in self.acked and ack > self.acked[device]:
            self.acked[device] = ack
            if all(self.acked[d] >= n for d, n in self.targets.items()):
                self.t_done = time.time()
                self.done.set()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _child(args: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            **kw)


def run_bench_ingest(args) -> int:
    per_device = max(1, args.events // args.devices)
    prefix = f"bench-{os.getpid()}-{int(time.time()) % 100000}-"  # never clashes with a DB's own
    devices = [f"{prefix}{i:04d}" for i in range(args.devices)]
    total = per_device * len(devices)
    messages = len(devices) * -(-per_device // args.per_message)
    work = Path(tempfile.mkdtemp(prefix="tg-bench-"))
    db_url = args.db or f"sqlite:///{work / 'bench.db'}"
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    say(f"bench ingest: {total} events from {len(devices)} devices, "
        f"{args.per_message} per message, {args.workers} worker(s), "
        f"db {db_url.split('://')[0]}")
    register_devices(db_url, devices)
    broker = Broker("mosquitto", workdir=work / "broker", purpose="bench").start()
    workers: list[subprocess.Popen] = []
    rawsub = None
    watcher = AckWatcher(broker.host, broker.port, {d: per_device for d in devices})
    try:
        for i in range(args.workers):  # they share the load through $share/fleet/...
            push = [] if i == 0 else ["--no-push"]  # one planning pusher per fleet
            workers.append(_child(["-m", "tools.cli", "fleet", "worker", "--db", db_url,
                                   "--broker", f"{broker.host}:{broker.port}", *push],
                                  stdout=open(work / f"worker{i}.log", "wb"),
                                  stderr=subprocess.STDOUT))
        ready = work / "rawsub.ready"
        rawsub = _child(["-m", "tools.bench.mqtt_load", "rawsub", "--port", str(broker.port),
                         "--expected", str(messages), "--per-message", str(args.per_message),
                         "--ready-file", str(ready)], stdout=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not (ready.exists() and all(_worker_ready(work / f"worker{i}.log")
                                              for i in range(len(workers)))):
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise TelegestError(f"a worker or the raw subscriber did not start: "
                                    f"see the logs in {work}")
            time.sleep(0.1)
        say("publishing...")
        pub = _child(["-m", "tools.bench.mqtt_load", "publish", "--port", str(broker.port),
                      "--devices", ",".join(devices), "--per-device", str(per_device),
                      "--per-message", str(args.per_message)], stdout=subprocess.PIPE)
        pub_out, _ = pub.communicate(timeout=600)
        published = json.loads(pub_out)
        raw = json.loads(rawsub.communicate(timeout=600)[0])
        watcher.done.wait(600)
    finally:
        watcher.close()
        for p in (*workers, rawsub):
            if p and p.poll() is None:
                p.terminate()
                p.wait(10)
        broker.stop()
    rows, distinct = count_stored(db_url, prefix)
    t0 = published["t_start"]
    fleet_s = (watcher.t_done or time.time()) - t0
    raw_s = (raw["t_last"] or time.time()) - t0
    result = {
        "events": total,
        "devices": len(devices),
        "workers": args.workers,
        "per_message": args.per_message,
        "publish_per_s": round(total / (published["t_end"] - t0), 1),
        "events_per_s": round(distinct / fleet_s, 1),
        "raw_paho_per_s": round(raw["events"] / raw_s, 1),
        "ratio": round((distinct / fleet_s) / (raw["events"] / raw_s), 3) if raw["events"] else 0,
        "lost": total - distinct,
        "duplicated": rows - distinct,
        "all_acked": watcher.done.is_set(),
        "database": db_url.split("://")[0],
    }
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


def _worker_ready(log: Path) -> bool:
    """The worker logs 'subscribed' once its subscriptions are granted."""
    try:
        return "subscribed" in log.read_text(errors="replace")
    except OSError:
        return False
