"""The firmware's MQTT client (firmware/runtime/mqtt.py) from CPython through a real mosquitto,
over the box's own net.open_stream: taps reach a fleet that acks them across a broker
restart (resubscribed, nothing lost), a broker that accepts TCP and then says nothing, and
refused credentials, and TLS with a provisioned device's login up to the fleet's ack; with
three broker addresses, the first refusing and the working one killed, the box moves on and
every tap is acked. Real time, no timing assertions: each wait is for a condition."""
import asyncio
import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.backoff import Backoff
from firmware.runtime.link import MqttLink
from firmware.runtime.mqtt import MqttClient
from firmware.runtime.net import open_stream
from firmware.ticks import ticks_ms
from tests.e2e.conftest import ingest_worker
from tests.helpers import find_device_with_visit_now, stored_seqs
from tests.runtime.fakes import Clock
from tools import pki
from tools.broker import Broker, free_port
from tools.up_broker import admit

pytestmark = pytest.mark.e2e


class Fleet:
    """A paho subscriber that stores clock events by seq and acks the highest gap-free one."""

    def __init__(self, port, stored: set[int] | None = None, lock=None):
        self.stored: set[int] = set() if stored is None else stored  # shared: one fleet
        self.lock = lock or threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-e2e")
        self.c.on_connect = lambda c, *a: c.subscribe("tg/v1/+/up/clock", 1)
        self.c.on_message = self.on_message
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def on_message(self, c, userdata, msg):
        with self.lock:
            for e in json.loads(msg.payload)["events"]:
                self.stored.add(e["seq"])
            ack = 0
            while ack + 1 in self.stored:
                ack += 1
        c.publish("tg/v1/r1/down/ack", json.dumps({"ack": ack, "rejected": []}), qos=1)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


async def until(cond, seconds=30):
    for _ in range(int(seconds * 20)):
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


def box(tmp_path, host="127.0.0.1", port=1883, brokers=None):
    """A reader's core and MQTT link (the box's own code, CPython): (clock, core, link)."""
    clock = Clock()
    core = ReaderCore("r1", Journal(str(tmp_path / "j")), Planning(), clock)
    link = MqttLink(core, open_stream, "r1", host, port, keepalive=5,
                    backoff=Backoff(200, 1000), connect_timeout=2, log=lambda m: None,
                    brokers=brokers)
    return clock, core, link


def run_box(link) -> list:
    """The link's task and the box's network poll (every 50 ms), as on the device."""
    async def net_task():
        while True:
            link.poll(ticks_ms(), True)
            await asyncio.sleep(0.05)
    return [asyncio.create_task(link.run()), asyncio.create_task(net_task())]


async def stop_box(link, tasks: list) -> None:
    link.close()
    await asyncio.sleep(0.3)
    for t in tasks:
        t.cancel()


async def tap_100(clock, core, link, at_50, once_up=lambda: None):
    """Run the link and the box's network poll, 100 unknown cards tapped once it is up, with
    `at_50` (a broker's outage, in a thread) at the 50th; returns when all 100 are acked."""
    tasks = run_box(link)
    assert await until(link.up)
    once_up()
    for i in range(100):
        clock.t += 1
        assert core.tap("%08X" % (0x30000000 + i)) in ("red", "unknown")
        if i == 50:
            await asyncio.to_thread(at_50)
        await asyncio.sleep(0.01)
    assert await until(lambda: core.journal.acked == 100, 60)
    await stop_box(link, tasks)


def test_taps_through_mosquitto_and_a_restart_nothing_lost(tmp_path):
    broker = Broker("mosquitto", workdir=tmp_path / "broker").start()
    fleet = Fleet(broker.port)
    clock, core, link = box(tmp_path, port=broker.port)
    try:
        asyncio.run(tap_100(clock, core, link, broker.restart))
        assert fleet.stored == set(range(1, 101))
        c = link.client
        assert c.connects >= 2 and c.drops >= 1 and c.session >= 2  # restarted, back
        assert link.received >= 1 and core.journal.depth == 0
    finally:
        fleet.stop()
        broker.stop()


def test_three_brokers_the_first_refuses_the_working_one_dies_every_tap_acked(tmp_path):
    # a cluster's nodes as the box sees them: a closed port, then two mosquittos, each with
    # the fleet subscribed behind it (one store: the fleet acks what it holds)
    closed = free_port()
    b = Broker("mosquitto", workdir=tmp_path / "b").start()
    c = Broker("mosquitto", workdir=tmp_path / "c").start()
    fleet_b = Fleet(b.port)
    fleet_c = Fleet(c.port, fleet_b.stored, fleet_b.lock)
    clock, core, link = box(tmp_path, "", 1883, brokers=[
        ("127.0.0.1", closed), ("127.0.0.1", b.port), ("127.0.0.1", c.port)])

    def on_the_second():  # the closed port refused: the next one
        assert link.client.port == b.port

    try:
        asyncio.run(tap_100(clock, core, link, b.kill, on_the_second))  # the working one dies
        assert fleet_b.stored == set(range(1, 101)) and core.journal.depth == 0
        cl = link.client
        assert cl.port == c.port and cl.connects == 2 and cl.failovers >= 2
        assert link.counters()["mqtt_broker"] == f"127.0.0.1:{c.port}"
    finally:
        fleet_b.stop()
        fleet_c.stop()
        b.stop()
        c.stop()


def test_a_broker_that_accepts_and_says_nothing_times_out(tmp_path):
    async def scenario():
        async def silent(reader, writer):
            await reader.read(1000)
            await asyncio.sleep(30)
        srv = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        c = MqttClient(open_stream, "r1", 60, Backoff(300, 600), 1000, log=lambda m: None)
        c.configure("127.0.0.1", port)
        task = asyncio.create_task(c.run())
        assert await until(lambda: c.timeouts >= 2, 20)
        assert c.state != "up" and "no CONNACK" in c.last_error
        c.stop()
        await asyncio.sleep(0.3)
        task.cancel()
        srv.close()
    asyncio.run(scenario())


def test_refused_credentials_back_off_and_erase_nothing(tmp_path):
    broker = Broker("mosquitto", workdir=tmp_path / "broker", auth=True).start()

    async def scenario():
        c = MqttClient(open_stream, "r1", 60, Backoff(200, 400), 2000, log=lambda m: None)
        c.configure("127.0.0.1", broker.port, "r1", "wrong")
        task = asyncio.create_task(c.run())
        assert await until(lambda: c.refused >= 2, 20)
        assert c.state != "up" and "refused" in c.last_error
        assert (c.user, c.password) == ("r1", "wrong")
        c.stop()
        await asyncio.sleep(0.3)
        task.cancel()
    try:
        asyncio.run(scenario())
    finally:
        broker.stop()


def test_over_tls_with_the_device_login_a_tap_is_stored_and_acked(demo, tmp_path):
    """The firmware's client on the boxes' TLS listener, verifying the broker with the
    firmware's own context, logged in as a provisioned device: a tap reaches the fleet's
    ingest worker, which stores it and acks it back."""
    db_url, _ = demo
    p = pki.ensure(tmp_path / "pki")
    broker = Broker("mosquitto", workdir=tmp_path / "broker", auth=True, tls_port=free_port(),
                    pki=p.folder).start()
    worker = None
    try:
        creds, _ = admit(broker, db_url, demo[1]["devices"])
        worker = ingest_worker(db_url, broker)
        ident, _, (_, badge) = find_device_with_visit_now(db_url)
        login = creds["devices"][ident]
        core = ReaderCore(ident, Journal(str(tmp_path / "j")), Planning(), Clock())
        link = MqttLink(core, open_stream, ident, "127.0.0.1", broker.tls_port,
                        login["username"], login["password"], connect_timeout=5,
                        ca=p.ca_cert.read_text(), log=lambda m: None)

        async def scenario():
            tasks = run_box(link)
            assert await until(link.up, 20), link.last_error
            core.clock.t = int(time.time())
            core.tap(badge)
            assert await until(lambda: core.journal.acked == 1, 30)
            await stop_box(link, tasks)

        asyncio.run(scenario())
        assert link.tls() and link.client.refused == 0
        assert stored_seqs(db_url, ident) == [1]
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
