"""The shared fakes behave the same on both interpreters (tests/firmware/fakes.py), so a test
written against them means the same thing on CPython and on MicroPython. FakeNet is the network
at firmware/runtime/net.py's seam, for the firmware's asyncio MQTT client's tests."""
import asyncio

from tests.firmware.fakes import ECONNREFUSED, Clock, FakeNet, ScriptedUART
from tests.firmware.support import raises


def test_the_clock_moves_by_hand():
    c = Clock(100, "rtc")
    c.advance(5)
    assert (c.time(), c.quality()) == (105, "rtc")


async def test_a_stream_reads_what_the_peer_sends_then_eof():
    net = FakeNet()
    r, w = await net.open_stream("mqtt.example", 8883, ssl=True)
    assert r is w and net.attempts == [("mqtt.example", 8883)] and w.ssl is True
    w.write(b"\x10\x00")
    await w.drain()
    assert bytes(net.streams[0].written) == b"\x10\x00"
    reading = asyncio.create_task(r.readexactly(4))
    await asyncio.sleep(0)
    net.streams[0].feed(b"\x20\x02")
    await asyncio.sleep(0)
    assert not reading.done()  # two bytes of four: still waiting
    net.streams[0].feed(b"\x00\x00rest")
    assert await reading == b"\x20\x02\x00\x00"
    assert await r.read(10) == b"rest"
    net.streams[0].eof()
    assert await r.read(10) == b""
    with raises(EOFError):
        await r.readexactly(1)
    w.close()
    await w.wait_closed()
    with raises(OSError):
        w.write(b"x")


async def test_a_refused_connect_and_a_connect_that_hangs():
    net = FakeNet()
    net.refuse = ECONNREFUSED
    with raises(OSError) as e:
        await net.open_stream("h", 1)
    assert e.value.args[0] == ECONNREFUSED
    net.refuse = 0
    net.hold = True
    opening = asyncio.create_task(net.open_stream("h", 1))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not opening.done() and net.streams == []  # hanging, the loop goes on
    net.release()
    r, w = await opening
    assert net.streams == [r]


async def test_a_broken_stream_raises_on_read_and_drain():
    net = FakeNet()
    r, w = await net.open_stream("h", 1)
    net.streams[0].fail()
    with raises(OSError):
        await r.read(1)
    with raises(OSError):
        await w.drain()


def test_the_scripted_uart_answers_each_frame_once():
    u = ScriptedUART([b"\x00\x00\xff\x00\xff\x00", b"reply"])
    assert u.any() == 0 and u.read(4) is None
    assert u.write(b"\x00\x00\xff\x02\xfe\xd4\x02\x2a\x00") == 9
    assert u.any() == 6 and u.read(3) == b"\x00\x00\xff" and u.read() == b"\x00\xff\x00"
    u.write(b"no frame start")
    assert u.any() == 0
    u.write(b"\x00\xff")
    assert u.read() == b"reply"
    assert bytes(u.written).endswith(b"no frame start\x00\xff")
