"""The MQTT link (ReaderCore over the non-blocking client): the connect sequence, resends after
reconnects, the health slot, and no event lost or left unacked over outages of every kind.
The client's own cases (bytes, back-off, bad packets) are tests/runtime/test_mqtt_client.py."""
import asyncio
import json
import random

from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.backoff import Backoff
from firmware.runtime.link import MqttLink
from tests.firmware.mqttfake import FakeClock, FakeNet
from tests.runtime.fakes import Clock

A = "04A1B2C3D4E5F6"
STATE = "tg/v1/r1/state"


class Box:
    """A ReaderCore, its link and the fake network, on one event loop and the fake clock;
    run(ms) is the net task's 100 ms polls with the client's task between them."""

    def __init__(self, tmp_path, **kw):
        self.clock = FakeClock()
        self.net = FakeNet(self.clock)
        self.time = Clock()
        self.core = ReaderCore("r1", Journal(str(tmp_path / "j"), segment_records=8), Planning(),
                               self.time)
        self.link = MqttLink(self.core, self.net.open_stream, "r1", "broker.local", 1883, "r1",
                             "secret", backoff=Backoff(1000, 8000), clock=self.clock,
                             log=lambda m: None, **kw)
        self.loop = asyncio.new_event_loop()
        self.task = self.loop.create_task(self.link.run())

    def run(self, ms, online=True):
        for _ in range(ms // 100):
            self.link.poll(self.clock.now, online)
            self.loop.run_until_complete(self.clock.advance(100))

    def close(self):
        self.link.close()
        self.loop.run_until_complete(self.clock.advance(500))
        self.loop.close()


def test_connect_sequence_will_subscribe_online(tmp_path):
    b = Box(tmp_path)
    b.run(300)
    s = b.net.sessions[0]
    assert (s.client_id, s.user, s.password, s.keepalive, s.clean) == (
        "r1", "r1", "secret", 60, True)
    assert s.will == (STATE, b"offline", True, 1)
    assert s.subs == ["tg/v1/r1/down/+", "tg/v1/r1/down/config/+"]
    assert b.net.retained[STATE] == b"online"
    assert b.link.up() and b.link.status() == "up"
    b.net.kill()  # the broker's side of the socket dies: the will goes out
    assert b.net.retained[STATE] == b"offline"
    b.close()


def test_publishes_outgoing_and_frees_on_ack(tmp_path):
    b = Box(tmp_path)
    b.run(300)
    for _ in range(20):
        b.time.t += 11
        b.core.tap(A)
    b.run(500)
    assert sorted(s for _, s in b.net.stored) == list(range(1, 21))
    assert b.core.journal.acked == 20 and b.core.journal.depth == 0
    assert b.link.published >= 2 and b.link.received >= 1
    b.close()


def test_reconnect_subscribes_again_and_resends_unacked(tmp_path):
    b = Box(tmp_path)
    b.net.fleet_acks = False
    b.run(300)
    b.core.tap(A)
    b.run(300)
    assert b.net.stored and b.core.journal.depth == 1  # sent, not acked
    b.net.kill()
    b.run(200)
    assert not b.link.up() and b.link.drops == 1
    assert b.net.retained[STATE] == b"offline"
    b.net.stored.clear()
    b.net.fleet_acks = True
    b.run(1500)  # back-off: 1 s
    assert b.link.up() and b.link.connects == 2
    assert b.net.sessions[-1].subs == ["tg/v1/r1/down/+", "tg/v1/r1/down/config/+"]
    assert b.net.retained[STATE] == b"online"
    assert ("r1", 1) in b.net.stored and b.core.journal.depth == 0  # resent after reconnect
    b.close()


def test_wifi_down_drops_link_and_waits_for_it(tmp_path):
    b = Box(tmp_path)
    b.run(300)
    b.run(5000, online=False)
    assert not b.link.up() and b.link.drops == 1 and len(b.net.opened) == 1
    b.run(1500)
    assert b.link.up()
    b.close()


def test_health_is_one_slot_sent_when_up(tmp_path):
    b = Box(tmp_path)
    b.link.send_health(b.core.health(1, 1, 1000))
    b.link.send_health(b.core.health(2, 2, 1000))
    assert b.link.health_replaced == 1
    b.run(500)
    health = [m for m in b.net.published if m[0].endswith("up/health")]
    assert len(health) == 1 and json.loads(health[0][1])["up"] == 2 and health[0][3] == 0
    b.close()


def test_configure_reconnects_to_new_broker_at_once(tmp_path):
    b = Box(tmp_path)
    b.run(300)
    b.link.configure("other.local", 8883, "u", "p")
    b.run(300)
    assert [m[1] for m in b.net.published if m[0] == STATE] == [b"online", b"offline", b"online"]
    assert b.link.up() and b.net.opened[-1] == ("other.local", 8883)
    b.close()


def test_unconfigured_broker_never_connects(tmp_path):
    b = Box(tmp_path)
    b.link.configure("", 1883)
    b.run(10000)
    assert b.net.opened == [] and b.link.status() == "unconfigured"
    b.close()


def test_no_event_lost_over_random_outages(tmp_path):
    """Taps all along while the broker restarts, refuses, hangs or goes silent, acks are lost
    and Wi-Fi drops: in the end every seq is stored in the fleet and acked."""
    rnd = random.Random(7)
    b = Box(tmp_path)
    online, down_until = True, 0
    for step in range(3000):
        b.time.t += 1
        if step < 2500 and rnd.random() < 0.1:
            assert b.core.tap("%08X" % (0x10000000 + rnd.randrange(50))) != "full"
        r = rnd.random()
        if r < 0.01:
            b.net.kill()
        elif r < 0.02:
            b.net.mode = rnd.choice(["down", "hang", "silent"])
            down_until = step + rnd.randrange(5, 50)
        elif r < 0.025:
            online = False
            down_until = step + rnd.randrange(5, 50)
        elif r < 0.035:
            b.net.fleet_acks = rnd.random() < 0.7
        if step >= down_until:
            b.net.mode, online = "ok", True
        if step >= 2500:
            b.net.mode, online, b.net.fleet_acks = "ok", True, True
        b.run(100, online)
    n = b.core.journal.last_seq
    assert n > 150
    assert sorted(s for _, s in b.net.stored) == list(range(1, n + 1))
    assert b.core.journal.acked == n and b.core.journal.depth == 0
    c = b.link.client
    assert c.drops >= 10 and c.failures >= 5 and c.timeouts >= 1  # the outages happened
    b.close()
