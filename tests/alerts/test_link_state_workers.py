"""Two fleet workers record the same devices' first last-will state at once (every worker
gets every `state` message: the topic is not shared). On PostgreSQL the second waits for the
first's commit, then must neither fail on the primary key nor undo a newer state."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from fleet import alerts
from fleet.db import make_engine, session_factory
from fleet.models import Device, DeviceLink
from tools.bench.ingest import register_devices

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def test_two_workers_insert_the_same_first_links(pg_database_url):
    register_devices(pg_database_url, [f"r{i}" for i in range(20)])  # migrated, active
    engine = make_engine(pg_database_url)
    sessions = session_factory(engine)
    with sessions() as s:
        ids = list(s.scalars(select(Device.id).order_by(Device.id)))
    first = {d: ("online", NOW) for d in ids}
    later = {d: ("offline" if d % 2 else "online", NOW + timedelta(seconds=5)) for d in ids}
    a, b = sessions(), sessions()
    try:
        alerts.on_state(a, first, NOW)  # A holds its new rows, not committed
        errors: list[BaseException] = []

        def second() -> None:
            try:  # B saw no link either: its insert waits for A, then finds A's rows
                alerts.on_state(b, later, NOW)
                b.commit()
            except BaseException as e:  # noqa: BLE001 - the assertion below says it
                errors.append(e)

        t = threading.Thread(target=second)
        t.start()
        t.join(1.0)
        assert t.is_alive()  # waiting on A's uncommitted rows
        a.commit()
        t.join(30)
        assert not errors, errors
        with sessions() as s:
            got = {link.device_id: (link.state, link.changed_at) for link in
                   s.scalars(select(DeviceLink))}
        assert {d: st for d, (st, _) in got.items()} == {d: st for d, (st, _) in later.items()}
        changed = {d for d, (st, at) in got.items() if at == NOW + timedelta(seconds=5)}
        assert changed == {d for d in ids if d % 2}  # the time moves only with the state
    finally:
        a.close()
        b.close()
        engine.dispose()
