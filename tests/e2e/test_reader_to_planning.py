"""A tap on a virtual reader reaches the planning: reader → mosquitto → worker → database → API."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest

from fleet.demo import demo_day
from tests.helpers import (WorkerProcess, count_events, find_device_with_visit_now,
                           reader_for, stored_seqs, wait_until)
from tools.broker import Broker
from tools.sim.reader import VirtualReader

pytestmark = pytest.mark.e2e


def items(body):
    return body["items"] if isinstance(body, dict) else body


def test_tap_starts_the_planned_visit_within_seconds(demo, mosquitto, worker, api, tmp_path):
    db_url, _ = demo
    ident, _, (visit_id, badge) = find_device_with_visit_now(db_url)
    reader = reader_for(db_url, mosquitto, tmp_path, ident).start()
    try:
        assert reader.connected.wait(10)
        assert reader.tap(badge) == "in"
        day = demo_day(datetime.now(timezone.utc)).isoformat()  # the agency's day, in Paris

        def started():
            for rec in items(api.get("/api/v1/visit-records", params={"day": day}).json()):
                if rec["visit_id"] == visit_id and rec.get("actual_start"):
                    return rec
            return None

        rec = wait_until(started, 10, what=f"visit {visit_id} started in the API")
        assert rec["status"] == "in_progress"
        assert reader.wait_drained(10), "the fleet's ack freed the journal"
        events = items(api.get("/api/v1/clock-events",
                               params={"day": day, "device": ident}).json())
        assert [(e["seq"], e["dir"], e["visit_id"]) for e in events] == [(1, "in", visit_id)]

        assert reader.tap(badge) == "repeat"  # a second tap within 10 s: not an 'out'
        time.sleep(0.1)
    finally:
        reader.stop()


def test_500_taps_offline_then_online_all_stored_once_in_order(demo, tmp_path):
    db_url, _ = demo
    broker = Broker("mosquitto", workdir=tmp_path / "broker")  # not started: the home is offline
    ident, config, (visit_id, badge) = find_device_with_visit_now(db_url)
    reader = VirtualReader(ident, broker.host, broker.port, tmp_path / "flash", config,
                           ack_timeout=2.0).start()
    worker = WorkerProcess(db_url, broker.host, broker.port, tmp_path / "worker.log")
    try:
        kinds = [reader.tap(badge) for _ in range(500)]
        assert "full" not in kinds
        assert reader.depth == 500 and reader.last_seq == 500
        broker.start()
        worker.start()
        assert reader.wait_drained(60), f"journal still holds {reader.depth} events"
        assert stored_seqs(db_url, ident) == list(range(1, 501)), "stored once, in order"
        assert count_events(db_url) == (500, 500)
        segments = [p.name for p in (tmp_path / "flash").iterdir() if p.name != "ack"]
        assert not [s for s in segments if s.endswith(".log")], f"journal not freed: {segments}"
    finally:
        reader.stop()
        worker.stop()
        broker.stop()


def test_bad_messages_are_counted_and_good_events_kept(demo, mosquitto, worker, api, tmp_path):
    db_url, _ = demo
    acks: list[tuple[str, dict]] = []
    got = threading.Event()

    def on_message(client, userdata, msg):
        acks.append((msg.topic, json.loads(msg.payload)))
        got.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.on_message = on_message
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    c.subscribe("tg/v1/+/down/ack", qos=1)
    time.sleep(0.3)
    now = int(time.time())
    good = {"seq": 1, "badge": "04A1B2C3D4E5F6", "dir": "in", "method": "nfc", "ts": now,
            "tq": "synced"}
    future = dict(good, seq=2, ts=now + 3 * 86400)
    typed = dict(good, seq=3, dir="sideways")
    bad_messages = [
        ("tg/v1/demo-r2/up/clock", b"{not json"),
        ("tg/v1/demo-r2/up/clock", b"x" * 2000),
        ("tg/v1/demo-r2/up/clock", json.dumps({"events": "nope"}).encode()),
        ("tg/v1/nobody/up/clock", json.dumps({"now": now, "events": [good]}).encode()),
        ("tg/v1/demo-r2/up/health", b"[1,2"),
    ]
    for topic, payload in bad_messages:
        c.publish(topic, payload, qos=1).wait_for_publish(5)
    c.publish("tg/v1/demo-r2/up/clock",
              json.dumps({"now": now, "events": [good, future, typed]}).encode(),
              qos=1).wait_for_publish(5)
    wait_until(lambda: any(t == "tg/v1/demo-r2/down/ack" for t, _ in acks), 10, what="an ack")
    c.loop_stop()
    c.disconnect()

    ack = [a for t, a in acks if t == "tg/v1/demo-r2/down/ack"][-1]
    assert ack["ack"] == 3, "the bad events count as stored so the device frees them"
    assert {(r["seq"], r["reason"]) for r in ack["rejected"]} == {(2, "ts_future"),
                                                                   (3, "bad_event")}
    assert stored_seqs(db_url, "demo-r2") == [1], "the good event of the batch is kept"
    assert worker.alive()
    stats = api.get("/api/v1/ingest/stats").json()
    flat = json.dumps(stats)
    for reason in ("malformed_json", "oversized", "bad_batch", "unknown_device", "ts_future",
                   "bad_event"):
        assert reason in flat, f"{reason} missing from {stats}"
    rejections = items(api.get("/api/v1/rejections", params={"reason": "unknown_device"}).json())
    assert rejections and rejections[0]["reason"] == "unknown_device"


def test_embedded_broker_path(demo, tmp_path):
    """amqtt speaks MQTT 3.1.1 only: the worker subscribes without a shared subscription."""
    db_url, _ = demo
    broker = Broker("amqtt", workdir=tmp_path / "broker").start()
    worker = WorkerProcess(db_url, broker.host, broker.port, tmp_path / "worker.log",
                           protocol="v311").start()
    ident, config, (visit_id, badge) = find_device_with_visit_now(db_url)
    reader = VirtualReader(ident, broker.host, broker.port, tmp_path / "flash", config,
                           ack_timeout=2.0).start()
    try:
        assert reader.connected.wait(10)
        assert reader.tap(badge) == "in"
        assert reader.wait_drained(30), worker.log()[-2000:]
        assert stored_seqs(db_url, ident) == [1]
    finally:
        reader.stop()
        worker.stop()
        broker.stop()
