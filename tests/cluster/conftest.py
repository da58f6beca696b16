"""What the NATS cluster's tests share: a 3-node cluster, and an MQTT client as the devices
speak it."""
from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import wait_until
from tools.cluster import Cluster


@pytest.fixture
def cluster(tmp_path):
    """Three nats-servers as one cluster, without logins; stopped after the test."""
    c = Cluster(3, workdir=tmp_path / "cluster").start()
    yield c
    c.stop()


class Client:
    """A paho MQTT 3.1.1 client (as the devices speak) that records what it receives."""

    def __init__(self, address: tuple[str, int], client_id: str, clean: bool = True,
                 login: tuple[str, str] | None = None) -> None:
        self.received: list[tuple[str, bytes, bool]] = []
        self.connected = threading.Event()
        self.refused: list[str] = []
        self.granted: list[list] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv311, clean_session=clean)
        if login:
            self.c.username_pw_set(*login)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda _c, _u, m: self.received.append(
            (m.topic, bytes(m.payload), bool(m.retain)))
        self.c.on_disconnect = lambda *_a: self.connected.clear()
        self.c.on_subscribe = lambda _c, _u, _mid, codes, _p: self.granted.append(codes)
        self.c.connect(*address, keepalive=10)
        self.c.loop_start()

    def _on_connect(self, _c, _u, _f, rc, _p):
        if rc.is_failure:
            self.refused.append(str(rc))
        else:
            self.connected.set()

    def subscribe(self, topic: str, timeout: float = 60.0) -> None:
        """Subscribe at QoS 1 until the broker grants it: while JetStream elects new leaders
        (a node lost), nats-server answers a subscription it could not make a consumer for
        with a failure code (0x80), and a client must ask again."""
        def granted() -> bool:
            self.granted.clear()
            self.c.subscribe(topic, qos=1)
            wait_until(lambda: self.granted, 10, what=f"a SUBACK for {topic}")
            return not self.granted[0][0].is_failure

        wait_until(granted, timeout, interval=0.5, what=f"the subscription to {topic}")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
