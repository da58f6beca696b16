"""Two fleet workers store batches that share devices (a JetStream or shared-subscription
consumer gives each worker any device's messages). On PostgreSQL their updates of `devices`
take row locks; taken in a batch's arrival order, one worker holding device 2 while waiting
for device 1, and the other the reverse, is a deadlock (seen at 800 health reports a second
over two workers). In device order, the second only waits."""
from __future__ import annotations

import threading
import time

import pytest

from fleet.db import make_engine, session_factory
from fleet.ingest import ingest_batch
from tools.bench.fleet_devices import health_payload
from tools.bench.ingest import register_devices

pytestmark = pytest.mark.postgres


def _health(idents: list[str]) -> list:
    return [(f"tg/v1/{i}/up/health", health_payload(), time.time()) for i in idents]


def test_batches_sharing_devices_wait_instead_of_deadlocking(pg_database_url):
    register_devices(pg_database_url, ["r1", "r2"])  # migrated, one agency, active readers
    engine = make_engine(pg_database_url)
    sessions = session_factory(engine)
    a, b = sessions(), sessions()
    errors: list[BaseException] = []
    try:
        ingest_batch(a, _health(["r1"]))  # worker A holds r1's row

        def worker_b() -> None:
            try:  # r2 then r1 as they arrived: in device order it waits on r1 holding nothing
                ingest_batch(b, _health(["r2", "r1"]))
                b.commit()
            except BaseException as e:  # noqa: BLE001 - the assertion below says it
                b.rollback()
                errors.append(e)

        t = threading.Thread(target=worker_b)
        t.start()
        t.join(1.5)
        assert t.is_alive()  # waiting for A's r1
        try:
            ingest_batch(a, _health(["r2"]))  # A's next message: r2 must be free
            a.commit()
        except BaseException as e:  # noqa: BLE001
            a.rollback()
            errors.append(e)
        t.join(30)
        assert not errors, errors
    finally:
        a.close()
        b.close()
        engine.dispose()
