"""Fixtures of the device-security tests: the API with a chosen broker control, a broker that
enforces identities (mosquitto + dynamic security)."""
from __future__ import annotations

import pytest

from tools.broker import Broker


def make_api(db_url: str, broker_control, role: str = "admin", label: str = "tests"):
    """A TestClient on `db_url` with a key of `role`; POST /enrol included."""
    from fastapi.testclient import TestClient

    from fleet.api.app import create_app
    from fleet.api.routes import devices
    from fleet.config import Settings
    from fleet.db import make_engine, session_factory
    from fleet.keys import create_api_key

    app = create_app(Settings(database_url=db_url))
    if not any(getattr(r, "path", "") == "/api/v1/enrol" for r in app.routes):
        app.include_router(devices.public_router, prefix="/api/v1")
    app.state.broker_control = broker_control
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        keys = {r: create_api_key(session, r, f"{label}-{r}")
                for r in ("admin", "manager", "technician")}
        session.commit()
    engine.dispose()
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {keys[role]}"
    client.keys = keys
    return client


def login(broker, username: str, password: str, client_id: str) -> str:
    """The CONNACK reason a device gets at `broker` with these credentials ("Success", "Not
    authorized", ...)."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    done, box = threading.Event(), {}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(username, password)
    c.on_connect = lambda _c, _u, _f, rc, _p: (box.setdefault("rc", str(rc)), done.set())
    c.connect_async(broker.host, broker.port)
    c.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
        return box["rc"]
    finally:
        c.disconnect()
        c.loop_stop()


def as_role(client, role: str) -> dict:
    return {"Authorization": f"Bearer {client.keys[role]}"}


@pytest.fixture
def secured(tmp_path):
    """mosquitto with allow_anonymous false and the dynamic security plugin."""
    broker = Broker("mosquitto", workdir=tmp_path / "secured", auth=True,
                    purpose="device security tests").start()
    yield broker
    broker.stop()
