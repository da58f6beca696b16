"""A box with several broker addresses (a cluster's nodes: settings `brokers`): round robin,
the next address at once when a connect fails or the broker dies or goes silent, the back-off
once per full round, and every event stored and acked exactly once through whichever node
(firmware/runtime/mqtt.py, link.py, settings.py). CPython and MicroPython, one source, in the
fake clock's virtual time against tests/firmware/mqttfake.py's FakeCluster."""
import asyncio
import json

from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.backoff import Backoff
from firmware.runtime.link import MqttLink
from firmware.runtime.settings import Settings, canonical, check
from tests.firmware.fakes import Clock
from tests.firmware.mqttfake import FakeCluster
from tests.firmware.support import check as ok
from tests.firmware.support import eq, raises, tmpdir

N1, N2, N3 = ("10.0.0.1", 1883), ("10.0.0.2", 1883), ("10.0.0.3", 1884)
T = 1795420000


class Box:
    """ReaderCore and its link over a FakeCluster; run(ms) is the net task's 100 ms polls with
    the client's task between them."""

    def __init__(self, name, brokers, keepalive=60, host="", port=1883):
        self.net = FakeCluster([N1, N2, N3])
        self.time = Clock(T)
        self.core = ReaderCore("r1", Journal(tmpdir(name) + "/j", segment_records=8),
                               Planning(), self.time)
        self.link = MqttLink(self.core, self.net.open_stream, "r1", host, port, "r1", "secret",
                             keepalive=keepalive, backoff=Backoff(1000, 8000),
                             clock=self.net.clock, log=lambda m: None, brokers=brokers)
        self.task = asyncio.create_task(self.link.run())

    async def run(self, ms):
        for _ in range(ms // 100):
            self.link.poll(self.net.clock.now)
            await self.net.clock.advance(100)

    def tap(self, n):
        for i in range(n):
            self.time.t += 61
            self.core.tap("04A1B2C3D4%04X" % (self.core.journal.last_seq + 1))

    def at(self):
        c = self.link.client
        return (c.host, c.port) if c.up() else None

    def opened(self):
        return [(h, p) for h, p, _ in self.net.opened]

    async def close(self):
        self.link.close()
        await self.net.clock.advance(500)
        ok(self.task.done(), "run() returns after close()")

    def exactly_once(self, n):
        """Taps 1..n each journaled once, stored once by the fleet, and acked."""
        j = self.core.journal
        eq((j.last_seq, j.acked, j.depth), (n, n, 0), "journal: last, acked, depth")
        eq(sorted(s for _, s in self.net.stored), list(range(1, n + 1)), "stored seqs")
        badges = [e["badge"] for e in self.net.stored.values()]
        eq(len(set(badges)), n, "one event a tap")


async def test_the_first_refuses_the_second_serves():
    b = Box("brokers1", [N1, N2, N3])
    b.net.node(*N1).mode = "down"  # connect refused
    b.tap(5)
    await b.run(1000)
    eq(b.at(), N2, "up on the second")
    eq(b.opened(), [N1, N2], "the first, then the second at once")
    eq(b.net.opened[1][2] - b.net.opened[0][2] < 100, True, "no back-off between them")
    eq(b.link.counters()["mqtt_broker"], "10.0.0.2:1883", "counters say where")
    eq((b.link.failures, b.link.client.failovers), (1, 1), "one failure, one move")
    b.exactly_once(5)
    eq(b.net.node(*N2).stores, 5, "all through the second")
    eq(b.net.node(*N3).opened, [], "the third never needed")
    await b.close()


async def test_the_working_one_dies_and_it_moves_on():
    b = Box("brokers2", [N1, N2, N3])
    b.net.node(*N1).mode = "down"
    b.net.node(*N2).fleet_acks = False  # the fleet is slow: events in flight when N2 dies
    b.tap(5)
    await b.run(1000)
    eq(b.at(), N2, "up on the second")
    eq(b.core.journal.acked, 0, "nothing acked yet")
    b.net.stop(*N2)
    b.tap(5)  # taps while the link moves: journaled, sent later
    await b.run(2000)
    eq(b.at(), N3, "moved on to the third")
    eq(b.opened(), [N1, N2, N3], "no back-off: the third is the round's next address")
    b.exactly_once(10)
    eq(b.net.node(*N3).stores >= 10, True, "the third got all the fleet had not acked")
    b.net.stop(*N3)  # the third dies too: round robin comes back to the first
    b.net.node(*N1).mode = "ok"
    b.tap(3)
    await b.run(2000)
    eq(b.at(), N1, "back to the first")
    eq(b.opened()[3:], [N1], "the next in turn")
    b.exactly_once(13)
    await b.close()


async def test_a_silent_broker_is_left_for_the_next():
    b = Box("brokers3", [N1, N2, N3], keepalive=10)
    b.tap(2)
    await b.run(500)
    eq(b.at(), N1, "up on the first")
    b.net.node(*N1).mode = "silent"  # TCP stays up, nothing is answered any more
    b.tap(3)
    await b.run(20000)  # silent for 1.5 keepalives: 15 s
    eq(b.at(), N2, "moved to the second")
    eq(b.link.last_error, "", "up again")
    eq(b.link.client.failovers, 1, "one move")
    b.exactly_once(5)
    await b.close()


async def test_the_back_off_is_waited_once_a_round():
    b = Box("brokers4", [N1, N2, N3])
    for a in (N1, N2, N3):
        b.net.node(*a).mode = "down"
    b.tap(3)
    await b.run(8000)
    ticks = [t for _, _, t in b.net.opened]
    eq(b.opened()[:7], [N1, N2, N3, N1, N2, N3, N1], "round robin")
    eq([ticks[i + 1] - ticks[i] < 100 for i in range(6)],
       [True, True, False, True, True, False], "at once inside a round")
    eq(ticks[3] - ticks[2] >= 1000 and ticks[6] - ticks[5] >= 2000, True,
       "1 s, then 2 s between rounds: %r" % (ticks,))
    b.net.node(*N3).mode = "ok"
    await b.run(8000)
    eq(b.at(), N3, "up when one comes back")
    b.exactly_once(3)
    await b.close()


async def test_nodes_that_accept_and_drop_are_not_hammered():
    # a connection that ends at once does not end the round: 3 connects, then the back-off
    b = Box("brokers6", [N1, N2, N3])
    for a in (N1, N2, N3):
        b.net.node(*a).mode = "flap"
    await b.run(5000)
    ticks = [t for _, _, t in b.net.opened]
    eq(b.opened()[:6], [N1, N2, N3, N1, N2, N3], "round robin")
    eq(len(ticks) <= 3 * 5, True, "at most a round a second: %d connects" % len(ticks))
    eq(ticks[3] - ticks[2] >= 1000, True, "the back-off after a round: %r" % (ticks,))
    for a in (N1, N2, N3):
        b.net.node(*a).mode = "ok"
    b.tap(2)
    await b.run(3000)
    eq(b.at() is not None, True, "up when they stop dropping")
    b.exactly_once(2)
    await b.close()


async def test_one_address_as_before():
    # no brokers list: host and port, each failure a full round: the back-off after each
    b = Box("brokers5", None, host=N1[0], port=N1[1])
    b.net.node(*N1).mode = "down"
    await b.run(4000)
    ticks = [t for _, _, t in b.net.opened]
    eq(b.opened()[:3], [N1, N1, N1], "the one address only")
    eq(ticks[1] - ticks[0] >= 1000 and ticks[2] - ticks[1] >= 2000, True, repr(ticks))
    eq(b.link.client.failovers, 0, "nowhere to move")
    b.net.node(*N1).mode = "ok"
    b.tap(2)
    await b.run(5000)
    eq(b.at(), N1, "up")
    b.exactly_once(2)
    b.link.configure(N1[0], N1[1], "r1", "secret", brokers=[N3, N2])  # a list replaces it
    await b.run(500)
    eq(b.at(), N3, "reconfigured: the list's first")
    await b.close()


def test_the_brokers_setting():
    eq(check("brokers", [["10.0.0.1", 1883], ("mqtt-2.agency.example", "8883")]),
       [["10.0.0.1", 1883], ["mqtt-2.agency.example", 8883]], "pairs")
    eq(check("brokers", "10.0.0.1:1883,10.0.0.2:1884"),
       [["10.0.0.1", 1883], ["10.0.0.2", 1884]], "the console's text")
    eq((check("brokers", ""), check("brokers", [])), ([], []), "none: host and port")
    for bad, why in ((["10.0.0.1", 1883], "pairs"), ([["10.0.0.1"]], "pairs"),
                     ([["", 1883]], "a host"), ([["a b", 1883]], "a host"),
                     ([["h/x", 1883]], "a host"), ([["10.0.0.1", 0]], "a port"),
                     ([["10.0.0.1", 70000]], "a port"), ([["10.0.0.1", 1883.0]], "a port"),
                     ("10.0.0.1", "pairs"), ("10.0.0.1:http", "a port"), (7, "pairs"),
                     ([["h", 1]] * 9, "pairs")):
        with raises(ValueError) as e:
            check("brokers", bad)
        eq(why in str(e.value), True, "%r: %s" % (bad, e.value))
    eq(canonical({"brokers": [["10.0.0.1", 1883], ["b", 8883]], "port": 1883}),
       b"brokers=l31302e302e302e313a313838332c623a38383833\nport=i1883\n", "canonical")
    eq(canonical({"brokers": [], "ca": ""}), b"brokers=l\nca=s\n", "canonical, empty values")


def test_old_settings_files_keep_working():
    d = tmpdir("brokers_settings")
    with open(d + "/settings.json", "w") as f:  # written by a firmware without `brokers`
        f.write(json.dumps({"id": "r1", "host": "10.0.0.1", "port": 1883}))
    s = Settings(d + "/settings.json")
    eq((s.status, s.get("host"), s.get("brokers")), ("ok", "10.0.0.1", []), "defaults")
    s.set("brokers", "10.0.0.1:1883,10.0.0.2:1883")
    s2 = Settings(d + "/settings.json")
    eq(s2.get("brokers"), [["10.0.0.1", 1883], ["10.0.0.2", 1883]], "saved and read back")
    staged = s2.stage({"brokers": [["10.0.0.3", 1884]]})
    eq(staged["brokers"], [["10.0.0.3", 1884]], "staged and read back")
    with raises(ValueError):
        s2.stage({"brokers": [["10.0.0.3", 0]]})
