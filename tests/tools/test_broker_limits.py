"""Finding "hostile payloads", broker side (issue #14, item 2): the Mosquitto configuration
the project writes caps the packet size (the protocol's messages are under 1 KiB) and what the
broker may queue for one client. Before, a client could publish hundreds of megabytes."""
from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

pytestmark = pytest.mark.e2e


def _client(broker, client_id: str):
    gone = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv311)
    c.on_disconnect = lambda *a: gone.set()
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    assert connected.wait(10)
    return c, gone


def test_finding_hostile_payloads_the_broker_drops_an_oversized_packet(mosquitto):
    c, gone = _client(mosquitto, "big-sender")
    try:
        c.publish("tg/v1/r-0001/up/clock", b"x" * 70_000, qos=1)
        assert gone.wait(10), "the broker kept a client sending a 70 KB packet"
    finally:
        c.loop_stop()
    small, gone_small = _client(mosquitto, "fair-sender")
    try:
        info = small.publish("tg/v1/r-0002/up/clock", b"x" * 1024, qos=1)
        info.wait_for_publish(10)
        assert info.is_published() and not gone_small.is_set()
    finally:
        small.disconnect()
        small.loop_stop()


def test_finding_hostile_payloads_the_broker_config_caps_queues(mosquitto):
    conf = (mosquitto.workdir / "mosquitto.conf").read_text()
    assert "max_packet_size 65536" in conf and "max_queued_bytes 67108864" in conf
