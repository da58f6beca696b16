"""The MQTT link: the connect sequence, resends after reconnects, back-off, and no event lost
or left unacked over outages that hit every kind of call."""
import json
import random

from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.backoff import Backoff
from firmware.runtime.link import MqttLink
from tests.runtime.fakes import Clock, Factory, FakeBroker

A = "04A1B2C3D4E5F6"


def make(tmp_path, broker=None, **kw):
    broker = broker or FakeBroker()
    factory = Factory(broker)
    clock = Clock()
    core = ReaderCore("r1", Journal(str(tmp_path / "j"), segment_records=8), Planning(), clock)
    link = MqttLink(core, factory, "r1", "broker.local", 1883, "r1", "secret",
                    backoff=Backoff(1000, 8000), **kw)
    return broker, factory, clock, core, link


def test_connect_sequence_will_subscribe_online(tmp_path):
    broker, factory, _, core, link = make(tmp_path)
    link.poll(0)
    c = factory.made[0]
    assert (c.client_id, c.host, c.port, c.user, c.password, c.keepalive) == (
        "r1", "broker.local", 1883, "r1", "secret", 60)
    assert c.will == ("tg/v1/r1/state", b"offline", True, 1)
    assert c.calls[:3] == ["connect", "subscribe", "publish"]
    assert c.clean_session is True
    assert c.subs == ["tg/v1/r1/down/#"]
    assert broker.retained["tg/v1/r1/state"] == b"online"
    assert link.up() and link.status() == "up"
    broker.lose(c)  # power cut at the broker's side of the socket: the will goes out
    assert broker.retained["tg/v1/r1/state"] == b"offline"


def test_publishes_outgoing_and_frees_on_ack(tmp_path):
    broker, _, clock, core, link = make(tmp_path)
    link.poll(0)
    for _ in range(20):
        clock.t += 11
        core.tap(A)
    link.poll(100)
    link.poll(200)  # the acks come back through check_msg
    assert sorted(s for _, s in broker.stored) == list(range(1, 21))
    assert core.journal.acked == 20 and core.journal.depth == 0
    topics = {t for t, _, _, _ in broker.published}
    assert "tg/v1/r1/up/clock" in topics


def test_reconnect_subscribes_again_and_resends_unacked(tmp_path):
    broker, factory, clock, core, link = make(tmp_path)
    broker.fleet_acks = False
    link.poll(0)
    core.tap(A)
    link.poll(100)
    assert broker.stored and core.journal.depth == 1  # sent, not acked
    factory.faults.append("check_msg")
    link.poll(200)
    assert not link.up() and link.drops == 1 and "ECONNRESET" in link.last_error
    assert broker.retained["tg/v1/r1/state"] == b"offline"
    broker.stored.clear()
    link.poll(500)  # back-off: 1 s
    assert not link.up()
    broker.fleet_acks = True
    link.poll(1200)
    assert link.up() and link.connects == 2
    assert factory.made[-1].subs == ["tg/v1/r1/down/#"]
    assert broker.retained["tg/v1/r1/state"] == b"online"
    link.poll(1300)
    assert ("r1", 1) in broker.stored and core.journal.depth == 0  # resent after reconnect


def test_backoff_doubles_to_cap_and_resets_on_success(tmp_path):
    broker, factory, _, _, link = make(tmp_path)
    broker.up = False
    now, attempts = 0, []
    for _ in range(400):
        n = len(factory.made)
        link.poll(now)
        if len(factory.made) > n:
            attempts.append(now)
        now += 100
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[:5] == [1000, 2000, 4000, 8000, 8000]
    assert link.failures == len(attempts)
    broker.up = True
    link.poll(now + 9000)
    assert link.up() and link.backoff.failures == 0


def test_wifi_down_drops_link_and_waits_for_it(tmp_path):
    _, factory, _, _, link = make(tmp_path)
    link.poll(0)
    link.poll(100, online=False)
    assert not link.up() and link.drops == 1
    link.poll(5000, online=False)
    assert len(factory.made) == 1  # no attempt without Wi-Fi
    link.poll(5100, online=True)
    assert link.up()


def test_keepalive_ping_only_when_idle(tmp_path):
    _, factory, clock, core, link = make(tmp_path, keepalive=10)
    link.poll(0)
    c = factory.made[0]
    link.poll(4000)
    assert c.pings == 0
    link.poll(5000)
    assert c.pings == 1
    clock.t += 5
    core.tap(A)
    link.poll(9000)  # a publish counts as traffic
    link.poll(13000)
    assert c.pings == 1
    link.poll(14000)
    assert c.pings == 2


def test_health_is_one_slot_sent_when_up(tmp_path):
    broker, _, _, core, link = make(tmp_path)
    link.send_health(core.health(1, 1, 1000))
    link.send_health(core.health(2, 2, 1000))
    assert link.health_replaced == 1
    link.poll(0)
    health = [m for t, m, _, _ in broker.published if t.endswith("up/health")]
    assert len(health) == 1 and json.loads(health[0])["up"] == 2
    assert [q for t, _, _, q in broker.published if t.endswith("up/health")] == [0]


def test_configure_reconnects_to_new_broker_at_once(tmp_path):
    broker, factory, _, _, link = make(tmp_path)
    link.poll(0)
    link.configure("other.local", 8883, "u", "p")
    assert not link.up()
    assert broker.retained["tg/v1/r1/state"] == b"offline"  # said before a clean disconnect
    link.poll(1)
    assert link.up() and factory.made[-1].host == "other.local" and factory.made[-1].port == 8883


def test_unconfigured_broker_never_connects(tmp_path):
    _, factory, _, _, link = make(tmp_path)
    link.configure("", 1883)
    for t in range(0, 10000, 500):
        link.poll(t)
    assert factory.made == [] or len(factory.made) == 1  # only the one before configure
    assert link.status() == "unconfigured"


def test_exceptions_of_any_kind_stay_inside(tmp_path):
    broker, factory, _, _, link = make(tmp_path)

    def bad(*a):
        raise AssertionError("umqtt asserts on a bad CONNACK")
    factory_calls = []

    def factory2(*a):
        factory_calls.append(a)
        c = factory(*a)
        c.connect = bad
        return c
    link.factory = factory2
    link.poll(0)
    assert not link.up() and "AssertionError" in link.last_error
    assert factory.made[-1].connected is False


def test_no_event_lost_over_random_outages(tmp_path):
    """Taps all along, while the broker goes away, sockets die on every kind of call, acks
    are lost and Wi-Fi drops: in the end every seq is stored once in the fleet and acked."""
    rnd = random.Random(7)
    broker, factory, clock, core, link = make(tmp_path)
    kinds = ["connect", "subscribe", "publish", "check_msg", "ping"]
    online, now, down_until = True, 0, 0
    for step in range(3000):
        now += 100
        clock.t += 1
        if step < 2500 and rnd.random() < 0.1:
            assert core.tap("%08X" % (0x10000000 + rnd.randrange(50))) != "full"
        r = rnd.random()
        if r < 0.02:
            factory.faults.append(rnd.choice(kinds))
        elif r < 0.03:
            broker.up = False  # down for 0.5 to 5 s
            down_until = step + rnd.randrange(5, 50)
        elif r < 0.035:
            online = False
            down_until = step + rnd.randrange(5, 50)
        elif r < 0.045:
            broker.fleet_acks = rnd.random() < 0.7
        if step >= down_until:
            broker.up = online = True
        if step >= 2500:
            broker.up, online, broker.fleet_acks = True, True, True
            factory.faults.clear()
        link.poll(now, online)
    n = core.journal.last_seq
    assert n > 150
    assert sorted(s for _, s in broker.stored) == list(range(1, n + 1))
    assert core.journal.acked == n and core.journal.depth == 0
    assert link.drops >= 10 and link.failures >= 10  # the outages really happened
    assert link.connects > 10
