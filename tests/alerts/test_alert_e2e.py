"""On a real mosquitto: a virtual reader reports a low battery (alert), dies without
disconnecting (the broker publishes its last will: device_offline after the organisation's
delay), comes back (resolved)."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from fleet import alerts
from fleet.db import make_engine, session_factory
from fleet.models import Alert, Device
from fleet.worker import IngestWorker
from tests.helpers import reader_for, wait_until

pytestmark = pytest.mark.e2e
IDENT = "demo-r1"


def test_low_battery_then_offline_by_last_will_then_back(demo, mosquitto, tmp_path):
    db_url, _ = demo
    engine = make_engine(db_url)
    sessions = session_factory(engine)

    def alerts_of(kind: str) -> list[tuple]:
        with sessions() as s:
            return s.execute(select(Alert.id, Alert.resolved_at, Alert.detail)
                             .join(Device, Device.id == Alert.device_id)
                             .where(Device.ident == IDENT, Alert.kind == kind)).all()

    with sessions() as s:
        org_id = s.scalar(select(Device.organisation_id).where(Device.ident == IDENT))
        alerts.set_offline_after(s, org_id, 2)  # seconds, for the test
        s.commit()
    worker = IngestWorker(db_url, mosquitto.host, mosquitto.port,  # leads: it sweeps
                          alert_sweep_s=0.3).start()
    reader = reader_for(db_url, mosquitto, tmp_path, IDENT, keepalive=5)
    again = None
    try:
        wait_until(lambda: worker._client.is_connected(), 10, what="the worker to connect")
        time.sleep(0.5)  # its SUBSCRIBE
        reader.start()
        assert reader.connected.wait(10)
        topic, payload, _ = reader.core.health(reader.clock.time(), 5, 80_000, bat=10)
        reader.client.publish(topic, payload, qos=1)
        (low,) = wait_until(lambda: alerts_of("low_battery"), 10, what="a low_battery alert")
        assert low.resolved_at is None and low.detail == {"bat": 10}
        assert alerts_of("device_offline") == []

        # power cut: no DISCONNECT, the socket just goes away
        reader._running = False
        reader.client.loop_stop()
        reader.client.socket().close()
        t0 = time.monotonic()
        (off,) = wait_until(lambda: alerts_of("device_offline"), 20,
                            what="a device_offline alert")
        assert off.resolved_at is None and off.detail["by"] == "will"
        assert time.monotonic() - t0 >= 1.5  # not before the organisation's delay

        again = reader_for(db_url, mosquitto, tmp_path, IDENT).start()
        wait_until(lambda: alerts_of("device_offline")[0].resolved_at is not None, 10,
                   what="device_offline resolved")
        time.sleep(1)  # a few sweeps: it stays resolved, nothing new is opened
        assert len(alerts_of("device_offline")) == 1
        assert len(alerts_of("low_battery")) == 1
    finally:
        if again is not None:
            again.stop()
        worker.stop()
        engine.dispose()
