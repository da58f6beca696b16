# Tap feedback latency on MicroPython (run by tools/bench/firmware.py through
# tools/micropython/run_mp.mjs): the box's reader task (TapLoop every 50 ms), its net task
# (MqttLink.poll every 100 ms) and the MQTT client's own task run on the real asyncio while
# the network is down (every connect refused) or hangs (a connect never completes). A card
# is put on the reader at a random moment; the latency is from then to the LED and buzzer.
# Prints "BENCH key value" lines.
import asyncio
import time

from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.backoff import Backoff
from firmware.runtime.feedback import Feedback
from firmware.runtime.link import MqttLink
from firmware.runtime.taps import TapLoop

TAPS = 100  # per network mode; replaced by tools/bench/firmware.py
MODE = ["down"]


async def open_stream(host, port, ssl=None):
    if MODE[0] == "down":
        raise OSError(113)
    while True:  # "hang": the TCP connect never completes
        await asyncio.sleep_ms(1000)


class Clock:
    t = 1795420000

    def time(self):
        return self.t

    def quality(self):
        return "synced"


class Reader:
    uid = None
    placed = 0

    def read_uid(self):
        return self.uid


class Indicator:
    def __init__(self):
        self.lat = []

    def set(self, color, hz):
        if color and reader.placed:
            self.lat.append(time.ticks_diff(time.ticks_us(), reader.placed))
            reader.placed = 0


state = [4242]


def rand(n):
    state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return state[0] % n


clock = Clock()
reader = Reader()
ind = Indicator()
core = ReaderCore("bench", Journal("/bench_fb", max_records=4000), Planning(), clock)
fb = Feedback(ind)
taps = TapLoop(reader, core, fb)
link = MqttLink(core, open_stream, "bench", "broker", backoff=Backoff(200, 2000),
                connect_timeout=2, log=lambda m: None)


async def every(ms, step):
    while True:
        step(time.ticks_ms())
        await asyncio.sleep_ms(ms)


def reader_step(now):
    taps.poll(now)
    fb.poll(now)


async def bench(mode):
    MODE[0] = mode
    ind.lat = []
    for i in range(TAPS):
        await asyncio.sleep_ms(20 + rand(80))
        clock.t += 7
        reader.placed = time.ticks_us()
        reader.uid = bytes((4, 0xB1, 0, 0, i >> 8, i & 0xFF, rand(256)))
        while reader.placed:
            await asyncio.sleep_ms(5)
        await asyncio.sleep_ms(60)
        reader.uid = None
    lat = sorted(ind.lat)
    p99 = lat[min(len(lat) - 1, len(lat) * 99 // 100)]
    print("BENCH tap_feedback_ms_p99_%s %.1f" % (mode, p99 / 1000))
    print("BENCH tap_feedback_ms_max_%s %.1f" % (mode, lat[-1] / 1000))
    print("BENCH tap_feedback_taps_%s %d" % (mode, len(lat)))


async def main():
    tasks = [asyncio.create_task(every(50, reader_step)),
             asyncio.create_task(every(100, lambda now: link.poll(now, True))),
             asyncio.create_task(link.run())]
    await bench("down")
    print("BENCH connect_failures_down %d" % link.client.failures)
    await bench("hang")
    print("BENCH connect_timeouts_hang %d" % link.client.timeouts)
    link.close()
    for t in tasks:
        t.cancel()
#@step
await main()
