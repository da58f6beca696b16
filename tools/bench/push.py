"""`telegest bench fleet` (push part): seconds to push a new planning to N devices.

In one run: a mosquitto on a free loopback port, a database holding N reader homes with
`--visits` visits a day each (today and tomorrow, caregivers with one card each), the fleet's
ConfigPusher publishing through a paho client as the worker does, and a raw subscriber on
`tg/v1/+/down/config`. Devices need not be connected: the configs are retained, so the push is
done when the broker has delivered every device's manifest (published after its parts).
Prints one JSON object: devices, push_all_s, bytes, messages (and the database's share).
"""
from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as mqtt

from tools.broker import Broker
from tools.errors import TelegestError


def seed_homes(db_url: str, prefix: str, devices: int, visits_per_day: int) -> None:
    """N clients with a reader each, N / 4 caregivers with a card, visits today and tomorrow."""
    import sqlalchemy as sa

    from fleet.db import make_engine, migrate
    from fleet.models import Badge, Caregiver, Client, Device, Organisation, Visit

    migrate(db_url)
    engine = make_engine(db_url)
    day = datetime.now(timezone.utc).replace(hour=6, minute=0, second=0, microsecond=0)
    with engine.begin() as c:
        org = c.execute(sa.insert(Organisation).values(
            name=f"bench agency {prefix}", timezone="UTC", tolerance_min=30)
            .returning(Organisation.id)).scalar_one()
        c.execute(sa.insert(Client), [{"organisation_id": org, "name": f"{prefix}{i}"}
                                      for i in range(devices)])
        clients = list(c.execute(sa.select(Client.id).where(Client.organisation_id == org)
                                 .order_by(Client.id)).scalars())
        people = max(1, devices // 4)
        c.execute(sa.insert(Caregiver), [{"organisation_id": org, "name": f"{prefix}g{i}"}
                                         for i in range(people)])
        carers = list(c.execute(sa.select(Caregiver.id).where(
            Caregiver.organisation_id == org).order_by(Caregiver.id)).scalars())
        c.execute(sa.insert(Badge), [{"organisation_id": org, "kind": "caregiver_card",
                                      "uid": f"{abs(hash(prefix)) % 0xFFFF:04X}{i:010X}",
                                      "caregiver_id": g, "active": True}
                                     for i, g in enumerate(carers)])
        c.execute(sa.insert(Device), [{"ident": f"{prefix}{i:05d}", "kind": "reader",
                                       "organisation_id": org, "client_id": cl,
                                       "status": "active", "config_version": 0,
                                       "acked_seq": 0}
                                      for i, cl in enumerate(clients)])
        rows = []
        for i, cl in enumerate(clients):
            for d in range(2):
                for k in range(visits_per_day):
                    start = day + timedelta(days=d, hours=2 * k)
                    rows.append({"organisation_id": org, "client_id": cl,
                                 "caregiver_id": carers[(i + k) % len(carers)],
                                 "planned_start": start,
                                 "planned_end": start + timedelta(minutes=45),
                                 "status": "planned"})
        for i in range(0, len(rows), 5000):
            c.execute(sa.insert(Visit), rows[i:i + 5000])
    engine.dispose()


class ManifestCounter:
    def __init__(self, host: str, port: int, prefix: str, expected: int) -> None:
        self.prefix, self.expected = prefix, expected
        self.seen: set[str] = set()
        self.done = threading.Event()
        self.t_done: float | None = None
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"push-bench-{prefix}")
        self.c.on_connect = lambda client, *a: client.subscribe("tg/v1/+/down/config", qos=1)
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = self._on_message
        self.c.connect(host, port)
        self.c.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        ident = msg.topic.split("/")[2]
        if ident.startswith(self.prefix) and msg.payload:
            self.seen.add(ident)
            if len(self.seen) >= self.expected and not self.done.is_set():
                self.t_done = time.monotonic()
                self.done.set()

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def run_bench_push(args) -> int:
    """args: devices (int), visits (per home per day, default 4), db (URL or None)."""
    from fleet.db import make_engine, session_factory
    from fleet.push import ConfigPusher

    n = int(args.devices)
    prefix = f"pb{int(time.time()) % 100000}-"
    work = Path(tempfile.mkdtemp(prefix="tg-bench-push-"))
    db_url = getattr(args, "db", None) or f"sqlite:///{work / 'bench.db'}"
    print(f"bench push: {n} devices, db {db_url.split('://')[0]}", file=sys.stderr)
    seed_homes(db_url, prefix, n, int(getattr(args, "visits", 4) or 4))
    broker = Broker("mosquitto", workdir=work / "broker", purpose="bench").start()
    engine = make_engine(db_url)
    counter = ManifestCounter(broker.host, broker.port, prefix, n)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"push-bench-pub-{prefix}",
                      protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(100)  # as the worker's client
    connected = threading.Event()
    pub.on_connect = lambda *a: connected.set()
    try:
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        if not (connected.wait(10) and counter.ready.wait(10)):
            raise TelegestError("the bench's MQTT clients did not connect")
        pusher = ConfigPusher(session_factory(engine),
                              lambda t, p, r: pub.publish(t, p, qos=1, retain=r))
        t0 = time.monotonic()
        pushed = pusher.push(None)
        t_db = time.monotonic() - t0
        if not counter.done.wait(600):
            raise TelegestError(f"only {len(counter.seen)} of {n} manifests arrived")
        result = {"devices": n, "pushed": pushed,
                  "push_all_s": round(counter.t_done - t0, 2),
                  "compute_and_publish_s": round(t_db, 2),
                  "bytes": pusher.counts["bytes"], "messages": pusher.counts["messages"],
                  "database": db_url.split("://")[0]}
    finally:
        counter.close()
        pub.loop_stop()
        pub.disconnect()
        engine.dispose()
        broker.stop()
    print(json.dumps(result))
    return 0 if result["pushed"] >= n else 1


if __name__ == "__main__":
    from types import SimpleNamespace

    raise SystemExit(run_bench_push(SimpleNamespace(
        devices=int(sys.argv[1]) if len(sys.argv) > 1 else 1000, visits=4,
        db=sys.argv[2] if len(sys.argv) > 2 else None)))
