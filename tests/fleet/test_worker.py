"""The worker's batching, with a fake publish (no broker: the e2e tests have one)."""
from __future__ import annotations

import json
import threading

from sqlalchemy import func, select

from fleet.models import ClockEvent
from fleet.worker import IngestWorker
from tests.helpers import wait_until

from .conftest import NOW, TS


def test_batches_commit_then_ack_then_match(database_url, agency, clock, event, engine):
    published = []
    worker = IngestWorker(database_url, "127.0.0.1", 1, batch_max=3, batch_wait_s=0.2,
                          publish=lambda t, p: published.append((t, json.loads(p))))
    worker.open_database()

    def seen_in_db(topic, payload):
        with engine.connect() as c:  # the ack goes out only after the commit
            assert c.scalar(select(func.count()).select_from(ClockEvent)) >= 1
        published.append((topic, json.loads(payload)))

    worker.publish = seen_in_db
    for seq in (1, 2, 3, 4):
        worker.queue.put(("tg/v1/r1/up/clock", clock(event(seq)), NOW))
    worker.queue.put(("tg/v1/r2/up/clock", b"junk", NOW))
    t = threading.Thread(target=worker._drain)
    t.start()
    worker._stop.set()
    t.join(5)
    assert worker.batches == 2 and worker.stored == 4
    assert worker.rejected == {"malformed_json": 1}
    assert published == [("tg/v1/r1/down/ack", {"ack": 3, "rejected": []}),
                         ("tg/v1/r1/down/ack", {"ack": 4, "rejected": []})]
    with engine.connect() as c:  # matched afterwards: no visit planned -> anomaly
        assert c.scalar(select(func.count()).where(ClockEvent.match_status == "pending")) == 0
    assert worker.counters["duplicates"] == 0


def test_failed_batch_publishes_nothing(database_url, agency, clock, event, monkeypatch):
    published = []
    worker = IngestWorker(database_url, "127.0.0.1", 1,
                          publish=lambda t, p: published.append(t))
    worker.open_database()

    def broken(*_a, **_k):
        raise RuntimeError("database went away")

    monkeypatch.setattr("fleet.worker.ingest_batch", broken)
    assert worker.process([("tg/v1/r1/up/clock", clock(event(1)), TS)]) == []
    assert published == [] and worker.counters["errors"] == 1


def test_a_message_that_cannot_be_stored_holds_back_only_its_device(
        database_url, agency, clock, event, monkeypatch, engine):
    """A poison message (here: the checks crash on it, standing for any bug) fails its batch;
    the worker stores the batch again one message at a time, so the other devices are acked."""
    import fleet.ingest

    real = fleet.ingest.checks.event_problem

    def crash_on_poison(ev, now_s):
        if ev.get("tag") == "POISON":
            raise ValueError("a bug the tests stand in for")
        return real(ev, now_s)

    monkeypatch.setattr(fleet.ingest.checks, "event_problem", crash_on_poison)
    published = []
    worker = IngestWorker(database_url, "127.0.0.1", 1,
                          publish=lambda t, p: published.append((t, json.loads(p))))
    worker.open_database()
    acks = worker.process([("tg/v1/r1/up/clock", clock(event(1)), TS),
                           ("tg/v1/r2/up/clock", clock(event(1, tag="POISON")), TS),
                           ("tg/v1/r1/up/clock", clock(event(2)), TS)], match=False)
    assert published == [("tg/v1/r1/down/ack", {"ack": 1, "rejected": []}),
                         ("tg/v1/r1/down/ack", {"ack": 2, "rejected": []})]
    assert len(acks) == 2 and worker.counters["errors"] == 2  # the batch, then r2 alone
    assert worker.stored == 2  # counted once, with the commits that stored them
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(ClockEvent)) == 2


def test_a_lost_database_is_not_retried_message_by_message(database_url, agency, clock, event,
                                                           monkeypatch):
    from sqlalchemy.exc import OperationalError

    calls = []

    def gone(session, messages, **_k):
        calls.append(len(messages))
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr("fleet.worker.ingest_batch", gone)
    worker = IngestWorker(database_url, "127.0.0.1", 1, publish=lambda t, p: None)
    worker.open_database()
    assert worker.process([("tg/v1/r1/up/clock", clock(event(s)), TS) for s in (1, 2, 3)]) == []
    assert calls == [3]


def test_worker_from_settings(database_url):
    from fleet.config import Settings

    w = IngestWorker(Settings(database_url=database_url, mqtt_protocol="v311"))
    assert w.protocol == "v311" and not w.shared


class _Settled:
    """The JetStream source's settle() seam (fleet.nats_transport): what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, str]] = []

    def settle(self, handles, outcome) -> None:
        self.calls.append((list(handles), outcome))


def test_jetstream_messages_are_acked_after_the_commit_and_nakked_when_it_fails(
        database_url, agency, clock, event, engine, tmp_path):
    from fleet.config import Settings
    from fleet.db import make_engine, session_factory

    published = []
    worker = IngestWorker(database_url, "127.0.0.1", 1,
                          publish=lambda t, p: published.append(t))
    worker.open_database()
    worker.source = _Settled()

    def committed(topic, payload):  # the device's ack and JetStream's: after the commit
        with engine.connect() as c:
            assert c.scalar(select(func.count()).select_from(ClockEvent)) == 2
        assert worker.source.calls == [(["h1", "h2", "h3"], "stored")]
        published.append(topic)

    worker.publish = committed
    worker.process([("tg/v1/r1/up/clock", clock(event(1)), NOW, "h1"),
                    ("tg/v1/r1/up/clock", clock(event(2)), NOW, "h2"),
                    ("tg/v1/r2/up/clock", b"junk", NOW, "h3")])  # refused, kept: settled
    assert published == ["tg/v1/r1/down/ack"]
    # the database away: nothing acked anywhere, JetStream gives them again
    worker._sessions = session_factory(make_engine(f"sqlite:///{tmp_path}/gone/no.db"))
    worker.source.calls.clear()
    assert worker.process([("tg/v1/r1/up/clock", clock(event(3)), NOW, "h4"),
                           ("tg/v1/r1/up/clock", clock(event(4)), NOW, "h5")]) == []
    assert worker.source.calls == [(["h4", "h5"], "retry")]
    assert Settings(database_url=database_url, nats_urls="nats://127.0.0.1:1").nats_servers


def test_on_nats_a_config_the_link_cannot_take_is_said_so_the_pusher_sends_it_again(
        database_url):
    import pytest

    from fleet.config import Settings

    nats = IngestWorker(Settings(database_url=database_url, nats_urls="nats://127.0.0.1:1"))
    assert (nats.protocol, nats.qos, nats.shared) == ("v311", 0, False)
    nats._client = nats._make_client()  # never connected: paho drops a QoS 0 publish
    with pytest.raises(ConnectionError, match="down/config not published"):
        nats._publish_retained("tg/v1/r1/down/config", b"{}", True)
    mosquitto = IngestWorker(database_url, "127.0.0.1", 1)
    mosquitto._client = mosquitto._make_client()  # QoS 1: paho keeps it for the reconnect
    mosquitto._publish_retained("tg/v1/r1/down/config", b"{}", True)
    assert len(mosquitto._client._out_messages) == 1


def test_a_tap_is_committed_and_acked_before_the_health_of_its_batch(
        database_url, agency, clock, event, engine):
    """One drained batch of health reports and a tap: two transactions, the tap's first, so
    its ack waits for its own commit, not for every device row the reports update."""
    from fleet.worker import records_first

    health = json.dumps({"now": TS, "fw": "1.0", "up": 1, "heap": 1, "jd": 0, "jfull": False,
                         "rd": "ok", "tq": "synced"}).encode()
    tap = ("tg/v1/r1/up/clock", clock(event(1)), NOW)
    reports = [("tg/v1/r1/up/health", health, NOW), ("tg/v1/r2/up/health", health, NOW)]
    assert records_first(reports) == [reports] and records_first([tap]) == [[tap]]
    assert records_first([reports[0], tap, reports[1]]) == [[tap], reports]

    batches = []
    worker = IngestWorker(database_url, "127.0.0.1", 1, batch_max=10, batch_wait_s=0.2,
                          publish=lambda t, p: None)
    worker.open_database()
    process = worker.process
    worker.process = lambda messages, match=True: (batches.append([m[0] for m in messages]),
                                                   process(messages, match))[1]
    for m in (reports[0], tap, reports[1]):
        worker.queue.put(m)
    t = threading.Thread(target=worker._drain)
    t.start()
    worker._stop.set()
    t.join(5)
    assert batches == [["tg/v1/r1/up/clock"], ["tg/v1/r1/up/health", "tg/v1/r2/up/health"]]
    assert worker.stored == 1 and worker.counts["health"] == 2


def test_a_tap_is_not_held_for_the_batch_window(database_url, agency, clock, event):
    """The window gathers health reports; a tap ends it at once (a 60 s window here: the tap
    is stored long before it would close)."""
    worker = IngestWorker(database_url, "127.0.0.1", 1, batch_max=500, batch_wait_s=60,
                          publish=lambda t, p: None)
    worker.open_database()
    health = json.dumps({"now": TS, "fw": "1.0", "up": 1, "heap": 1, "jd": 0, "jfull": False,
                         "rd": "ok", "tq": "synced"}).encode()
    worker.queue.put(("tg/v1/r2/up/health", health, NOW))
    worker.queue.put(("tg/v1/r1/up/clock", clock(event(1)), NOW))
    t = threading.Thread(target=worker._drain)
    t.start()
    try:
        wait_until(lambda: worker.stored == 1, 20, what="the tap stored within the window")
        assert worker.counts["health"] == 1  # queued before it: joined its batch
    finally:
        worker._stop.set()
        t.join(5)


def test_a_device_coming_online_is_offered_the_live_copy_of_its_pending_config(database_url):
    class Pusher:
        def __init__(self):
            self.asked = []

        def reannounce(self, ident):
            self.asked.append(ident)
            return True

    worker = IngestWorker(database_url, "127.0.0.1", 1, publish=lambda t, p: None)
    worker.pusher = Pusher()
    worker._on_up("tg/v1/r7/state", b"online")
    worker._on_up("tg/v1/r8/state", b"offline")
    worker._on_up("tg/v1/r9/up/health", b"{}")
    assert worker.pusher.asked == ["r7"]
    assert worker.queue.qsize() == 3  # each still handled as before
