"""The MQTT client's unit tests (firmware/runtime/mqtt.py), in the one suite: each runs on CPython
and on the real MicroPython (tests/firmware/conftest.py). Everything runs in the fake clock's
virtual time, against the fake network's broker (tests/firmware/mqttfake.py)."""
import asyncio

from firmware.runtime.backoff import Backoff
from firmware.runtime.mqtt import MqttClient
from tests.firmware.mqttfake import FakeNet
from tests.firmware.support import check, eq

STATE = "tg/v1/r1/state"


def client(net, keepalive=60, **kw):
    log = []
    c = MqttClient(net.open_stream, "r1", keepalive, Backoff(1000, 8000), 5000,
                   clock=net.clock, log=log.append, **kw)
    c.logged = log
    c.will = (STATE, b"offline", True, 1)
    c.birth = (STATE, b"online", True, 1)
    c.subs = [("tg/v1/r1/down/#", 1)]
    c.configure("broker.local", 1883, "r1", "secret")
    return c


async def start(net, **kw):
    c = client(net, **kw)
    task = asyncio.create_task(c.run())
    await net.clock.advance(300)
    return c, task


async def stop(net, c, task):
    c.stop()
    await net.clock.advance(300)
    check(task.done(), "run() returns after stop()")


def kinds(net, kind):
    return [p for p in net.packets if p[1] & 0xF0 == kind]


async def test_connect_sequence_bytes():
    net = FakeNet()
    c, task = await start(net)
    eq(c.state, "up", "state")
    connect = [p for p in net.packets if p[1] == 0x10][0][2]
    eq(connect, b"\x00\x04MQTT\x04\xee\x00\x3c" + b"\x00\x02r1" + b"\x00\x0etg/v1/r1/state"
       + b"\x00\x07offline" + b"\x00\x02r1" + b"\x00\x06secret", "CONNECT bytes")
    eq(net.sessions[0].subs, ["tg/v1/r1/down/#"], "subscribed")
    eq(net.retained[STATE], b"online", "online, retained")
    eq(net.published[-1][3], 1, "online at QoS 1")
    check(c._flight == {}, "online PUBACKed")
    await stop(net, c, task)
    eq(net.retained[STATE], b"offline", "a clean stop says offline itself")
    check(kinds(net, 0xE0), "DISCONNECT sent")


async def test_qos1_publish_puback_tracking():
    net = FakeNet()
    c, task = await start(net)
    for i in range(6):
        check(c.publish("tg/v1/r1/up/x", b"m%d" % i, False, 1), "queued")
    await net.clock.advance(200)
    eq([m[1] for m in net.published if m[0] == "tg/v1/r1/up/x"],
       [b"m%d" % i for i in range(6)], "all sent, in order")
    eq(len(c._flight), 0, "every PUBACK matched")
    eq(c.published, 7, "online + 6")
    await stop(net, c, task)


async def test_reconnect_resubscribes_and_retransmits_with_dup():
    net = FakeNet()
    c, task = await start(net)
    net.withhold_pubacks = True
    c.publish("tg/v1/r1/up/x", b"a", False, 1)
    c.publish("tg/v1/r1/up/x", b"b", False, 1)
    await net.clock.advance(200)
    eq(len(c._flight), 2, "two in flight")
    net.withhold_pubacks = False
    net.kill()
    await net.clock.advance(200)
    eq(c.state, "down", "the drop is seen")
    eq(net.retained[STATE], b"offline", "the will went out")
    eq(c.drops, 1, "drops")
    check("end of stream" in c.last_error or "EOF" in c.last_error, c.last_error)
    await net.clock.advance(1200)  # back-off 1 s
    eq(c.state, "up", "back")
    eq(c.session, 2, "a second session")
    eq(len(kinds(net, 0x80)), 2, "subscribed again")
    dups = [m for m in net.published if m[4]]
    eq([m[1] for m in dups], [b"a", b"b"], "retransmitted with DUP")
    eq(c.retransmitted, 2, "counted")
    eq(c._flight, {}, "acked this time")
    eq(net.retained[STATE], b"online", "online again")
    await stop(net, c, task)


async def test_refused_credentials_back_off_and_keep_the_password():
    net = FakeNet(users={"r1": "another"})
    c = client(net)
    task = asyncio.create_task(c.run())
    attempts = []
    for _ in range(200):
        n = len(net.opened)
        await net.clock.advance(100)
        if len(net.opened) > n:
            attempts.append(net.clock.now)
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    check(gaps[:4] == [1000, 2000, 4000, 8000] or gaps[:4] == [1100, 2000, 4000, 8000], gaps)
    eq(c.refused, len(attempts), "each refusal counted")
    check("bad user name or password (4)" in c.last_error, c.last_error)
    eq((c.user, c.password), ("r1", "secret"), "nothing erased")
    net.users = {"r1": "secret"}
    await net.clock.advance(9000)
    eq(c.state, "up", "in once the broker agrees")
    await stop(net, c, task)


async def test_a_silent_broker_times_out():
    net = FakeNet()
    net.mode = "silent"
    c = client(net)
    task = asyncio.create_task(c.run())
    await net.clock.advance(5300)
    eq(c.timeouts, 1, "no CONNACK in 5 s")
    check("no CONNACK" in c.last_error, c.last_error)
    eq(c.state, "down", "down")
    net.mode = "ok"
    await net.clock.advance(1500)
    eq(c.state, "up", "next attempt works")
    await stop(net, c, task)


async def test_a_hanging_connect_never_holds_the_loop():
    net = FakeNet()
    net.mode = "hang"
    c = client(net)
    task = asyncio.create_task(c.run())
    beats = []

    async def reader_task():  # the tap loop's rhythm: every 50 ms
        while True:
            await net.clock.sleep_ms(50)
            beats.append((net.clock.now, net.pending))
    r = asyncio.create_task(reader_task())
    await net.clock.advance(5300)
    during = [b for b in beats if b[1]]
    check(len(during) >= 90, "the other task ran all along the hung connect")
    eq(c.timeouts, 1, "given up after 5 s")
    eq(net.pending, 0, "the hung connect was cancelled")
    r.cancel()
    await stop(net, c, task)


async def test_bad_packets_are_counted_and_the_link_stays():
    net = FakeNet()
    c, task = await start(net)
    net.inject(b"\x40\x02\x12\x34")  # PUBACK for a packet id never used
    net.inject(b"\x50\x02\x00\x01")  # PUBREC: QoS 2 is never asked for
    net.inject(b"\x32\x03\x00\x09a")  # PUBLISH whose topic runs past its end
    net.send("tg/v1/r1/down/ack", b"{}")
    await net.clock.advance(200)
    eq(c.unknown_acks, 1, "unknown PUBACK")
    eq(c.malformed, 2, "malformed")
    eq(c.state, "up", "still up")
    eq(c.get(), ("tg/v1/r1/down/ack", b"{}"), "then a good message")
    check(any("unknown packet id 4660" in m for m in c.logged), c.logged)
    await stop(net, c, task)


async def test_a_payload_over_the_buffer_is_skipped():
    net = FakeNet()
    c, task = await start(net, max_in=64)
    net.send("tg/v1/r1/down/config", b"x" * 300)
    net.send("tg/v1/r1/down/ack", b"small")
    await net.clock.advance(200)
    eq(c.oversize, 1, "oversize counted")
    eq(c.get(), ("tg/v1/r1/down/ack", b"small"), "the next one arrives")
    eq(c.get(), None, "the big one never does")
    eq(net.pubacks, 2, "both PUBACKed")
    eq(c.state, "up", "still up")
    await stop(net, c, task)


async def test_a_malformed_length_ends_the_connection():
    net = FakeNet()
    c, task = await start(net)
    net.inject(b"\x30\xff\xff\xff\xff\x01")
    await net.clock.advance(200)
    eq(c.malformed, 1, "counted")
    eq(c.drops, 1, "the stream cannot be trusted: closed")
    await net.clock.advance(1200)
    eq(c.state, "up", "reconnected")
    await stop(net, c, task)


async def test_queues_are_bounded_and_count_their_drops():
    net = FakeNet()
    net.mode = "down"
    c = client(net, out_max=2, in_max=2)
    task = asyncio.create_task(c.run())
    check(c.publish("t", b"1") and c.publish("t", b"2"), "two fit")
    check(not c.publish("t", b"3"), "the third does not")
    eq(c.out_dropped, 1, "out drop")
    net.mode = "ok"
    await net.clock.advance(1500)
    eq(c.state, "up", "up")
    for i in range(3):
        net.send("tg/v1/r1/down/ack", b"%d" % i)
    await net.clock.advance(200)
    eq(c.in_dropped, 1, "in drop")
    eq((c.get(), c.get(), c.get()), (("tg/v1/r1/down/ack", b"0"), ("tg/v1/r1/down/ack", b"1"),
                                     None), "the two first")
    await stop(net, c, task)


async def test_keepalive_pings_and_a_silent_broker_is_left():
    net = FakeNet()
    c, task = await start(net, keepalive=10)
    await net.clock.advance(5200)
    eq(net.pings, 1, "a ping after 5 idle seconds")
    net.mode = "silent"
    await net.clock.advance(16000)
    check("broker silent" in c.last_error, c.last_error)
    eq(c.drops, 1, "left")
    net.mode = "ok"
    await net.clock.advance(8000)  # an attempt begun while silent times out first
    eq(c.state, "up", "back")
    await stop(net, c, task)


async def test_wifi_down_ends_the_link_and_waits():
    net = FakeNet()
    c, task = await start(net)
    c.online = False
    await net.clock.advance(5000)
    eq((c.state, c.drops, len(net.opened)), ("down", 1, 1), "no attempt without Wi-Fi")
    c.online = True
    await net.clock.advance(1200)
    eq(c.state, "up", "back")
    await stop(net, c, task)


async def test_a_connection_dying_right_after_its_connack_is_a_failure():
    # the SUBSCRIBE written on a socket already reset: run() used to die on that OSError
    net = FakeNet()
    net.mode = "flap"
    c, task = await start(net)
    await net.clock.advance(4000)
    check(not task.done(), "run() goes on")
    eq(len(net.opened) >= 3 and c.drops >= 3, True, "dropped and tried again")
    check("ECONNRESET" in c.last_error, c.last_error)
    net.mode = "ok"
    await net.clock.advance(9000)
    eq(c.state, "up", "up once the broker keeps it")
    await stop(net, c, task)


async def test_configure_reconnects_at_once():
    net = FakeNet()
    c, task = await start(net)
    c.configure("other.local", 8883, "u", "p", ssl="ctx")
    await net.clock.advance(300)
    states = [m[1] for m in net.published if m[0] == STATE]
    eq(states, [b"online", b"offline", b"online"], "offline said before the clean disconnect")
    eq(net.opened[-1], ("other.local", 8883), "new broker")
    eq(net.contexts[-1], "ctx", "its TLS context handed to open_stream")
    eq((c.state, c.drops, c.failures), ("up", 0, 0), "no failure counted")
    await stop(net, c, task)



def test_a_link_holding_a_ca_it_cannot_use_never_connects_in_clear():
    """docs/firmware.md, TLS: no stream is opened, the failure is counted and said."""
    from firmware.journal import Journal
    from firmware.planning import Planning
    from firmware.reader import ReaderCore
    from firmware.runtime.link import MqttLink
    from tests.firmware.fakes import Clock
    from tests.firmware.support import MP, tmpdir

    opened = []

    async def open_stream(host, port, ssl=None):
        opened.append((host, port, ssl))
        raise OSError(113)

    core = ReaderCore("r1", Journal(tmpdir("linktls") + "/j", segment_records=8), Planning(),
                      Clock())
    tl = MqttLink(core, open_stream, "r1", "broker", 8883, backoff=Backoff(100, 400),
                  ca="-----BEGIN CERTIFICATE-----\nbm8=\n-----END CERTIFICATE-----\n")
    tl.poll(0)
    eq((tl.client.host, tl.failures, tl.status(), tl.tls()), ("", 1, "down", True),
       "tls: no clear")
    eq(opened, [], "nothing opened")
    # the WebAssembly port has no ssl module; CPython has one, and refuses this CA
    why = "no ssl module" if MP else "cannot load the CA certificate"
    check(tl.last_error.startswith("ValueError: ") and why in tl.last_error, tl.last_error)
