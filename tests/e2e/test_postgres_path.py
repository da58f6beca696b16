"""The e2e path against PostgreSQL: reader → mosquitto → worker → PostgreSQL → API."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.helpers import WorkerProcess, count_events, find_device_with_visit_now, stored_seqs
from tools.sim.reader import VirtualReader
from tools.up import seed

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


def test_clock_ins_reach_the_planning_on_postgres(pg_database_url, mosquitto, tmp_path):
    db_url = pg_database_url
    seed(db_url)
    ident, config, (visit_id, badge) = find_device_with_visit_now(db_url)
    worker = WorkerProcess(db_url, mosquitto.host, mosquitto.port, tmp_path / "worker.log")
    reader = VirtualReader(ident, mosquitto.host, mosquitto.port, tmp_path / "flash", config,
                           ack_timeout=2.0)
    mosquitto.stop()  # the morning starts offline
    try:
        reader.start()
        assert reader.tap(badge) == "in"
        for _ in range(199):
            reader.tap(badge)
        mosquitto.start()
        worker.start()
        assert reader.wait_drained(60), worker.log()[-2000:]
        assert stored_seqs(db_url, ident) == list(range(1, 201))
        assert count_events(db_url) == (200, 200)
        engine = sa.create_engine(db_url)
        with engine.connect() as c:
            status = c.execute(sa.text("SELECT status FROM visit_records WHERE visit_id = :v"),
                               {"v": visit_id}).scalar_one()
        engine.dispose()
        assert status == "in_progress"
    finally:
        reader.stop()
        worker.stop()
