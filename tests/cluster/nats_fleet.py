"""What the NATS cluster's e2e and chaos tests share: fleet workers in NATS mode as processes
(so a test may kill them), spread over the nodes, and virtual readers spread the same way."""
from __future__ import annotations

from pathlib import Path

from tests.helpers import WorkerProcess, count_events, stored_seqs, wait_until
from tools.sim.reader import VirtualReader


def nats_worker(db_url: str, cluster, i: int, log: Path, push: bool = True,
                login: tuple[str, str] | None = None) -> WorkerProcess:
    """`telegest fleet worker --nats ...`: its MQTT connection (down messages, states) starts
    on node i % n and moves to the next node when one fails. `login`: the fleet-worker user of
    a cluster that enforces identities (fleet.natsauth)."""
    addresses = cluster.mqtt_addresses
    first = addresses[i % len(addresses)]
    rest = [a for a in addresses if a != first]
    env = {"TELEGEST_MQTT_BROKERS": ",".join(f"{h}:{p}" for h, p in rest),
           "TELEGEST_LEASE_TTL_S": "4"}
    if login:
        env.update(TELEGEST_MQTT_USERNAME=login[0], TELEGEST_MQTT_PASSWORD=login[1])
    w = WorkerProcess(db_url, *first, log, protocol="v311", env=env)
    w.argv += ["--nats", ",".join(cluster.nats_urls)]
    w.argv += [] if push else ["--no-push"]
    return w


def start_fleet(workers: list[WorkerProcess], readers: list[VirtualReader],
                timeout: float = 60) -> None:
    """Start the workers, wait until each one is subscribed to the states over MQTT and
    fetching from its JetStream consumer, then start the readers."""
    for w in workers:
        w.start()
    for w in workers:
        wait_until(lambda w=w: ("subscribed" in w.log() and "fetching" in w.log())
                   or not w.alive(), timeout, what="a NATS worker to be ready")
        assert w.alive(), w.log()[-3000:]
    for r in readers:
        r.start()


def spread_readers(idents: list[str], cluster, root: Path, config: dict,
                   ack_timeout: float = 2.0,
                   passwords: dict[str, str] | None = None) -> list[VirtualReader]:
    """Reader i connects first to node i % n and knows every node; `passwords`: each one's
    login (its ident as username)."""
    addresses = cluster.mqtt_addresses
    return [VirtualReader(d, *addresses[i % len(addresses)], root / d, config,
                          ack_timeout=ack_timeout, brokers=addresses,
                          username=d if passwords else None,
                          password=(passwords or {}).get(d))
            for i, d in enumerate(idents)]


def worker_counters(w: WorkerProcess) -> dict:
    """The counters a stopped worker logged last ('stopped: {...}')."""
    import ast

    line = [x for x in w.log().splitlines() if "stopped: {" in x][-1]
    return ast.literal_eval(line.split("stopped: ", 1)[1])


def exactly_once(db_url: str, readers: list[VirtualReader], per_reader: dict[str, int],
                 timeout: float = 60) -> dict:
    """Every reader's journal acked, every seq 1..N stored once; the counts, said."""
    for r in readers:
        assert r.wait_drained(timeout), (
            f"{r.device_id} still holds {r.depth} unacked events (connected "
            f"{r.connected.is_set()} to {r.host}:{r.port}, moved {r.moves} times, refused "
            f"{r.refused}, subscriptions refused {r.sub_refused}, stored {len(stored_seqs(db_url, r.device_id))}, "
            f"{r.core.counters() if hasattr(r.core, 'counters') else ''})")
    missing = {r.device_id: sorted(set(range(1, per_reader[r.device_id] + 1))
                                   - set(stored_seqs(db_url, r.device_id)))
               for r in readers}
    rows, distinct = count_events(db_url)
    expected = sum(per_reader.values())
    counts = {"expected": expected, "stored_rows": rows, "distinct": distinct,
              "lost": expected - distinct, "duplicated": rows - distinct}
    print(f"exactly once: {counts}", flush=True)
    assert not any(missing.values()), f"lost: {missing}"
    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts
    return counts


def jetstream_state(urls: list[str], login: tuple[str, str] | None = None) -> dict:
    """The stream TG_UP and its consumer `fleet`, as the cluster sees them: what is stored
    (a work queue keeps only what no worker has acked), fetched but not acked, not fetched."""
    import asyncio

    import nats

    from fleet.nats_transport import CONSUMER, STREAM

    async def read() -> dict:
        opts = {"user": login[0], "password": login[1]} if login else {}
        nc = await nats.connect(urls, connect_timeout=5, **opts)
        try:
            js = nc.jetstream(timeout=5)
            si = await js.stream_info(STREAM)
            ci = await js.consumer_info(STREAM, CONSUMER)
            return {"stored": si.state.messages, "replicas": si.config.num_replicas,
                    "subjects": sorted(si.config.subjects or []),
                    "ack_pending": ci.num_ack_pending, "not_fetched": ci.num_pending,
                    "redelivered": ci.num_redelivered}
        finally:
            await nc.close()

    return asyncio.run(read())
