"""On a real mosquitto with dynamic security: identities are enforced by the broker itself.

One story, in order: provision two readers, A's data flows; A cannot publish as B; wrong and
unknown passwords are refused at CONNECT; blocking A drops its live connection and refuses its
reconnect while its journal keeps what it had; unblocking gives new credentials that work and
the old ones never again; the audit log tells every step with who and why.
"""
from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleet.brokerauth import DynsecControl, DynsecSettings
from fleet.config import Settings
from fleet.worker import IngestWorker
from tests.fleetops.conftest import as_role, make_api
from tests.helpers import reader_for, stored_seqs, wait_until

pytestmark = pytest.mark.e2e

BATCH = '{"now": %d, "events": [{"seq": 1, "badge": "04A1B2C3D4E5F6", "dir": "in", ' \
        '"method": "nfc", "ts": %d, "tq": "synced"}]}'


def _connect(broker, username, password, client_id, v5=True):
    """(client, CONNACK reason) for a raw paho client."""
    done, box = threading.Event(), {}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    c.username_pw_set(username, password)
    c.on_connect = lambda _c, _u, _f, rc, _p: (box.setdefault("rc", rc), done.set())
    c.on_publish = lambda _c, _u, mid, rc, _p: box.setdefault("pub", {}).update({mid: rc})
    c.connect_async(broker.host, broker.port)
    c.loop_start()
    assert done.wait(10), "no CONNACK"
    return c, box


def _close(c):
    c.disconnect()
    c.loop_stop()


def test_the_broker_enforces_device_identities(demo, secured, tmp_path):
    import time

    db_url, _ = demo
    control = DynsecControl(DynsecSettings(secured.host, secured.port, *secured.admin))
    api = make_api(db_url, control)
    worker = IngestWorker(Settings(database_url=db_url, mqtt_host=secured.host,
                                   mqtt_port=secured.port, mqtt_username=secured.worker[0],
                                   mqtt_password=secured.worker[1]))
    worker.start()
    readers = []
    try:
        # anonymous clients are refused outright: the fleet's worker logs in as itself
        anon, box = _connect(secured, None, None, "anon")
        assert box["rc"].is_failure
        _close(anon)

        a = api.post("/api/v1/devices/demo-r1/provision",
                     headers=as_role(api, "technician")).json()
        b = api.post("/api/v1/devices/demo-r2/provision",
                     headers=as_role(api, "technician")).json()
        assert a["broker_enforced"] and a["password"] != b["password"]

        ra = reader_for(db_url, secured, tmp_path, "demo-r1", username="demo-r1",
                        password=a["password"]).start()
        readers.append(ra)
        assert ra.connected.wait(10), ra.refused
        ra.tap("04A1B2C3D4E5F6")
        assert ra.wait_drained(15), "A's event is stored and acked through the secured broker"
        assert stored_seqs(db_url, "demo-r1") == [1]
        wait_until(lambda: api.get("/api/v1/devices/demo-r1").json()["status"] == "active",
                   10, what="A active after its first message")

        # A cannot publish as B: refused on MQTT v5 (PUBACK 'Not authorized'), silently
        # dropped on 3.1.1; B's data never reaches the database
        now = int(time.time())
        spoof5, box5 = _connect(secured, "demo-r1", a["password"], "demo-r1")
        info = spoof5.publish("tg/v1/demo-r2/up/clock", BATCH % (now, now), qos=1)
        wait_until(lambda: info.mid in box5.get("pub", {}), 10, what="PUBACK")
        assert str(box5["pub"][info.mid]) == "Not authorized"
        _close(spoof5)
        spoof3, box3 = _connect(secured, "demo-r1", a["password"], "demo-r1", v5=False)
        spoof3.publish("tg/v1/demo-r2/up/clock", BATCH % (now, now), qos=1).wait_for_publish(5)
        _close(spoof3)
        # nor take B's client id with its own credentials, nor use a wrong or unknown password
        for user, pw, cid in (("demo-r1", a["password"], "demo-r2"),
                              ("demo-r1", b["password"], "demo-r1"),
                              ("ghost", "x" * 40, "ghost")):
            c, box = _connect(secured, user, pw, cid)
            assert str(box["rc"]) == "Not authorized", (user, cid)
            _close(c)
        time.sleep(1.0)
        assert stored_seqs(db_url, "demo-r2") == []

        # block A: its live connection is dropped and its reconnect refused by the broker
        assert ra.connected.is_set()
        t0 = time.monotonic()
        cmd = api.post("/api/v1/devices/demo-r1/block", json={"reason": "box stolen"},
                       headers=as_role(api, "manager")).json()
        wait_until(lambda: not ra.connected.is_set(), 5, what="A's connection dropped")
        dropped_in = time.monotonic() - t0
        assert dropped_in < 2.0
        assert cmd["kind"] == "wipe" and cmd["state"] == "pending"
        wait_until(lambda: ra.refused, 15, what="A's reconnect refused")
        assert ra.refused[-1] == "Not authorized"
        ra.tap("04A1B2C3D4E5F6")  # the thief taps: journaled on the box, never accepted
        time.sleep(1.5)
        assert ra.depth == 1 and stored_seqs(db_url, "demo-r1") == [1]
        blocked = api.get("/api/v1/audit", params={"target": "device:demo-r1",
                                                   "action": "block"}).json()["items"][0]
        assert blocked["detail"]["acked_seq"] == 1  # the fleet stopped at seq 1: seq 2 is held
        ra.stop()

        # unblock = provision again: new credentials work, the old ones never again
        new = api.post("/api/v1/devices/demo-r1/unblock", json={"reason": "found at the home"},
                       headers=as_role(api, "technician")).json()
        assert new["password"] != a["password"]
        old, box = _connect(secured, "demo-r1", a["password"], "demo-r1")
        assert str(box["rc"]) == "Not authorized"
        _close(old)
        rb = reader_for(db_url, secured, tmp_path, "demo-r1", username="demo-r1",
                        password=new["password"]).start()
        readers.append(rb)
        assert rb.connected.wait(10), rb.refused
        # the journal kept through the block is uploaded once the device is trusted again
        assert rb.wait_drained(15)
        assert stored_seqs(db_url, "demo-r1") == [1, 2]

        audit = api.get("/api/v1/audit", params={"target": "device:demo-r1"}).json()["items"]
        steps = [(e["action"], e["role"], e["why"]) for e in reversed(audit)]
        assert steps[:2] == [("provision", "technician", None),
                             ("activate", "fleet", "first message with its provisioned "
                                                   "credentials")]
        assert ("block", "manager", "box stolen") in steps
        assert steps[-2:] == [("unblock", "technician", "found at the home"),
                              ("activate", "fleet", "first message with its provisioned "
                                                    "credentials")]
        assert all(e["who"] for e in audit)
    finally:
        for r in readers:
            r.stop()
        worker.stop()
        control.close()


def test_dynsec_state_survives_a_broker_restart(secured):
    control = DynsecControl(DynsecSettings(secured.host, secured.port, *secured.admin))
    control.provision("r-keep", "k" * 40)
    control.close()
    secured.restart()
    c, box = _connect(secured, "r-keep", "k" * 40, "r-keep")
    assert not box["rc"].is_failure
    _close(c)
