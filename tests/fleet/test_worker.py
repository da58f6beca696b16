"""The worker's batching, with a fake publish (no broker: the e2e tests have one)."""
from __future__ import annotations

import json
import threading

from sqlalchemy import func, select

from fleet.models import ClockEvent
from fleet.worker import IngestWorker

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


def test_worker_from_settings(database_url):
    from fleet.config import Settings

    w = IngestWorker(Settings(database_url=database_url, mqtt_protocol="v311"))
    assert w.protocol == "v311" and not w.shared
