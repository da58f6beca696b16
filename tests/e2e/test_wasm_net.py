"""The virtual box's network for asyncio (tools/vboard/streams.mjs, rom/_vboxnet.py): from the
real MicroPython on the WebAssembly board, through the firmware's seam
`firmware.runtime.net.open_stream` (asyncio.open_connection, which the board provides), raw
MQTT 3.1.1 with a real mosquitto enforcing the device's login, while another asyncio task
keeps running."""
from __future__ import annotations

import shutil
import threading

import paho.mqtt.client as mqtt
import pytest
from mpremote.transport_serial import SerialTransport

from fleet.brokerauth import DynsecControl, DynsecSettings, new_password
from tests.helpers import ROOT, wait_until
from tools.broker import free_port
from tools.vboard import VirtualBoard, VirtualBoardError

pytestmark = [pytest.mark.e2e, pytest.mark.micropython, pytest.mark.virtual_hw,
              pytest.mark.timeout(120)]

AP = ("tg-net", "the pass")
DEVICE = "box-7"

# Run on the board. MQTT packets spelled byte by byte, as the firmware's client
# (firmware/runtime/mqtt.py) sends them.
PROBE = r"""
import asyncio
import _vboxnet
from firmware.runtime.net import open_stream
LOG = []
TICKS = [0]
STOP = [False]
GO = [False]

async def ticker():
    while not STOP[0]:
        TICKS[0] += 1
        await asyncio.sleep_ms(10)

def varlen(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def s(b):
    return len(b).to_bytes(2, "big") + b

def packet(kind, body):
    return bytes([kind]) + varlen(len(body)) + body

async def read_packet(r):
    kind = (await r.readexactly(1))[0]
    n, mul = 0, 1
    while True:
        b = (await r.readexactly(1))[0]
        n += (b & 0x7F) * mul
        mul *= 128
        if not b & 0x80:
            break
    return kind, await r.readexactly(n)

async def until_go():
    while not GO[0]:
        await asyncio.sleep_ms(20)
    GO[0] = False

async def probe(host, port, refused_port, user, password, dev):
    ticker_task = asyncio.create_task(ticker())
    try:
        LOG.append("bridged %s" % (asyncio.open_connection is _vboxnet.open_connection))
        try:
            await open_stream(host, refused_port)
            LOG.append("refused: no error")
        except OSError as e:
            LOG.append("refused errno %d" % e.errno)
        r, w = await open_stream(host, port)
        w.write(packet(0x10, s(b"MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big")
                       + s(dev) + s(user) + s(password)))
        await w.drain()
        kind, body = await read_packet(r)
        LOG.append("connack %02x %s" % (kind, body.hex()))
        w.write(packet(0x82, b"\x00\x01" + s(("tg/v1/%s/down/#" % dev).encode()) + b"\x01"))
        await w.drain()
        kind, body = await read_packet(r)
        LOG.append("suback %02x %s" % (kind, body.hex()))
        topic = ("tg/v1/%s/up/health" % dev).encode()
        w.write(packet(0x32, s(topic) + b"\x00\x02" + b'{"probe": 1}'))
        await w.drain()
        kind, body = await read_packet(r)
        LOG.append("puback %02x %s" % (kind, body.hex()))
        LOG.append("waiting for a message")
        kind, body = await read_packet(r)
        n = int.from_bytes(body[:2], "big")
        LOG.append("message %02x %s %s" % (kind, body[2:2 + n].decode(), body[4 + n:].decode()))
        w.write(packet(0x40, body[2 + n:4 + n]))
        await w.drain()
        LOG.append("waiting for EOF")
        LOG.append("read %r" % (await r.read(16)))
        w.close()
        await w.wait_closed()
    except Exception as e:
        LOG.append("error %r" % (e,))
    finally:
        STOP[0] = True
        await ticker_task
        LOG.append("done")
"""


@pytest.fixture
def board(tmp_path):
    """A box with the firmware package on /lib (as deployed), its Wi-Fi joined."""
    install = tmp_path / "install"
    shutil.copytree(ROOT / "firmware", install / "lib" / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__", "main.py", "boot.py"))
    try:
        b = VirtualBoard(box=True, ap=AP, install=install).start()
    except VirtualBoardError as e:
        pytest.fail(str(e))
    t = SerialTransport(b.url, timeout=1)
    try:
        t.enter_raw_repl(soft_reset=False)
        t.exec("import network\nw = network.WLAN(network.STA_IF)\nw.active(True)\n"
               f"w.connect({AP[0]!r}, {AP[1]!r})")
        wait_until(lambda: t.eval("w.isconnected()"), 10, interval=0.1, what="the Wi-Fi")
        yield t
    finally:
        t.close()
        b.stop()


def test_raw_mqtt_from_micropython_through_the_bridge(board, secured):
    password = new_password()
    control = DynsecControl(DynsecSettings(secured.host, secured.port, *secured.admin))
    try:
        control.provision(DEVICE, password)
    finally:
        control.close()
    heard: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    fleet = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    fleet.username_pw_set(*secured.worker)
    fleet.on_connect = lambda c, *_: c.subscribe(f"tg/v1/{DEVICE}/up/#", qos=1)
    fleet.on_subscribe = lambda *_: subscribed.set()
    fleet.on_message = lambda _c, _u, m: heard.append((m.topic, m.payload))
    fleet.connect(secured.host, secured.port)
    fleet.loop_start()
    try:
        assert subscribed.wait(10)
        board.exec(PROBE)
        board.exec(f"asyncio.create_task(probe({secured.host!r}, {secured.port}, {free_port()}, "
                   f"{DEVICE!r}, {password!r}, {DEVICE!r}))")

        def log():
            return board.eval("LOG")

        def ticks():
            return board.eval("TICKS[0]")

        wait_until(lambda: "waiting for a message" in log(), 30, interval=0.1,
                   what="the probe's CONNECT, SUBSCRIBE and PUBLISH")
        # the board's loop runs while a read waits on the network
        before = ticks()
        wait_until(lambda: ticks() >= before + 5, 10, interval=0.05, what="the ticker")
        fleet.publish(f"tg/v1/{DEVICE}/down/cmd", b'{"id": "c1", "kind": "ping"}', qos=1)
        wait_until(lambda: "waiting for EOF" in log(), 10, interval=0.1, what="the message")
        before = ticks()
        wait_until(lambda: ticks() >= before + 5, 10, interval=0.05, what="the ticker")
        secured.stop()
        wait_until(lambda: "done" in log(), 10, interval=0.1, what="EOF")
        lines = log()
    finally:
        fleet.loop_stop()
        fleet.disconnect()
    assert lines == [
        "bridged True",
        "refused errno 111",  # ECONNREFUSED
        "connack 20 0000",  # session present 0, accepted
        "suback 90 000101",  # packet id 1, granted QoS 1
        "puback 40 0002",
        "waiting for a message",
        f"message 32 tg/v1/{DEVICE}/down/cmd " + '{"id": "c1", "kind": "ping"}',
        "waiting for EOF",
        "read b''",
        "done",
    ]
    assert (f"tg/v1/{DEVICE}/up/health", b'{"probe": 1}') in heard


STREAM_PROBE = r"""
import asyncio
import network
OUT = []

async def streams(port):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            await asyncio.wait_for_ms(r.read(5), 50)
            OUT.append("read: no timeout")
        except asyncio.TimeoutError:
            OUT.append("timed out")
        w.write(b"send")
        await w.drain()
        OUT.append("exact %r" % (await r.readexactly(11)))
        OUT.append("line %r" % (await r.readline()))
        buf = bytearray(4)
        OUT.append("into %d %r" % (await r.readinto(buf), bytes(buf)))
        pending = asyncio.create_task(r.read(1))
        await asyncio.sleep_ms(20)
        network.WLAN(network.STA_IF).disconnect()
        try:
            await pending
            OUT.append("read after the Wi-Fi went: no error")
        except OSError as e:
            OUT.append("wifi gone errno %d" % e.errno)
        try:
            await asyncio.open_connection("127.0.0.1", port)
            OUT.append("open without Wi-Fi: no error")
        except OSError as e:
            OUT.append("no wifi errno %d" % e.errno)
        try:
            await asyncio.open_connection("127.0.0.1", port, ssl=True)
        except OSError as e:
            OUT.append("ssl errno %d" % e.errno)
    except Exception as e:
        OUT.append("error %r" % (e,))
    OUT.append("done")
"""


def test_streams_lose_nothing_to_a_timeout_and_die_with_the_wifi(board):
    """A read cancelled by wait_for leaves its bytes for the next read; readexactly and
    readline span TCP segments; a read waiting when the Wi-Fi goes raises ENOTCONN, a connect
    without Wi-Fi EHOSTUNREACH, and TLS (no ssl module here) EOPNOTSUPP."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        board.exec(STREAM_PROBE)
        board.exec(f"asyncio.create_task(streams({port}))")
        peer, _ = server.accept()
        with peer:
            wait_until(lambda: "timed out" in board.eval("OUT"), 10, what="the read to time out")
            assert peer.recv(16) == b"send"
            peer.sendall(b"hello")  # what the cancelled read did not take is still there
            wait_until(lambda: board.eval("OUT") == ["timed out"], 5, what="readexactly waiting")
            peer.sendall(b" world")
            peer.sendall(b"a li")
            peer.sendall(b"ne\nabcd")
            wait_until(lambda: "done" in board.eval("OUT"), 10, what="the probe")
            out = board.eval("OUT")
    finally:
        server.close()
    assert out == ["timed out", "exact b'hello world'", "line b'a line\\n'", "into 4 b'abcd'",
                   "wifi gone errno 107", "no wifi errno 113", "ssl errno 95", "done"]


CLIENT_PROBE = r"""
import asyncio
from firmware.runtime.backoff import Backoff
from firmware.runtime.mqtt import MqttClient
from firmware.runtime.net import open_stream
TICKS = [0]

async def ticker():
    while True:
        TICKS[0] += 1
        await asyncio.sleep_ms(10)

c = MqttClient(open_stream, "x", 60, Backoff(300, 600), 1000, log=lambda m: None)
"""


def test_the_firmware_client_leaves_a_silent_broker_without_holding_the_board(board):
    """The firmware's own MQTT client on the box, against a broker that accepts TCP and never
    answers: each connect ends after its 1 s CONNACK timeout and is retried after the
    back-off, while another task keeps ticking (umqtt.simple, which blocked here, is gone)."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        board.exec(CLIENT_PROBE)
        board.exec(f"c.configure('127.0.0.1', {port})\nasyncio.create_task(c.run())\n"
                   "T = asyncio.create_task(ticker())")
        wait_until(lambda: board.eval("c.timeouts") >= 2, 30, interval=0.2,
                   what="two connects timed out")
        before = board.eval("TICKS[0]")
        wait_until(lambda: board.eval("TICKS[0]") >= before + 5, 10, interval=0.05,
                   what="the ticker")
        state = board.eval("(c.state != 'up', 'no CONNACK within 1000 ms' in c.last_error, "
                           "c.connects)")
        board.exec("c.stop()\nT.cancel()")
    finally:
        server.close()
    assert state == (True, True, 0)
