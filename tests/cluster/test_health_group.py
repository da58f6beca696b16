"""Health reports on a NATS cluster go through the workers' queue group, not the stream
(fleet.nats_transport): each report reaches one worker, none is stored in JetStream, a worker
whose queue is full drops and counts them, and a stream made by an earlier version (all of
`tg.v1.*.up.>`, its consumer filtered on it) is changed in place without losing a tap."""
from __future__ import annotations

import asyncio
import threading

import nats
import pytest
from nats.js.api import ConsumerConfig, AckPolicy, StreamConfig, RetentionPolicy

from fleet.nats_transport import (CONSUMER, STREAM, STORED, UP_SUBJECTS, JetStreamSource,
                                  wait_ready)
from tests.cluster.conftest import Client
from tests.cluster.nats_fleet import jetstream_state
from tests.helpers import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("processes")]


class Sink:
    """A worker's side: what it was handed, and a room it can be told to lack."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes, object]] = []
        self.room = 1000
        self.lock = threading.Lock()
        self.source: JetStreamSource | None = None

    def deliver(self, topic, payload, handle) -> None:
        with self.lock:
            self.got.append((topic, bytes(payload), handle))
        if handle is not None:
            self.source.settle([handle], STORED)

    def topics(self, suffix: str) -> list[str]:
        with self.lock:
            return [t for t, _, _ in self.got if t.endswith(suffix)]


def start(cluster, sink: Sink, name: str, node: int = 0) -> JetStreamSource:
    urls = list(cluster.nats_urls)
    sink.source = JetStreamSource(urls[node:] + urls[:node], sink.deliver, lambda: sink.room,
                                  replicas=3, name=name).start()
    assert wait_ready(sink.source, 60), sink.source.error
    return sink.source


def stream_state(cluster) -> tuple[list[str], int]:
    state = jetstream_state(list(cluster.nats_urls))
    return state["subjects"], state["stored"]


def test_health_goes_to_one_worker_of_the_group_and_never_into_the_stream(cluster):
    a, b = Sink(), Sink()
    sources = [start(cluster, a, "hg-a", 0), start(cluster, b, "hg-b", 1)]
    device = Client(cluster.mqtt_addresses[2], "hg-r1")
    try:
        assert device.connected.wait(30)
        for i in range(40):
            device.c.publish("tg/v1/hg-r1/up/health", b'{"n":%d}' % i, qos=1)
        device.c.publish("tg/v1/hg-r1/up/clock", b'{"seq":1}', qos=1)
        wait_until(lambda: len(a.topics("/up/health")) + len(b.topics("/up/health")) == 40, 20,
                   what="the 40 health reports, each to one worker")
        wait_until(lambda: a.topics("/up/clock") + b.topics("/up/clock"), 20, what="the tap")
        health = [h for s in (a, b) for t, _, h in s.got if t.endswith("/up/health")]
        assert health == [None] * 40  # not JetStream messages: nothing to ack
        clock = [h for s in (a, b) for t, _, h in s.got if t.endswith("/up/clock")]
        assert len(clock) == 1 and clock[0] is not None
        assert sorted(UP_SUBJECTS) == ["tg.v1.*.up.clock", "tg.v1.*.up.ota", "tg.v1.*.up.sos"]
        wait_until(lambda: stream_state(cluster) == (sorted(UP_SUBJECTS), 0), 20,
                   what="the tap acked and no health stored in the stream")
        # a worker with no room drops health (counted), the other takes the rest
        a.room = 0
        got = [len(a.got), len(b.got)]
        dropped = sources[0].counts["health_dropped"]
        for i in range(40):
            device.c.publish("tg/v1/hg-r1/up/health", b'{"n":%d}' % (100 + i), qos=1)
        counted = lambda: (len(b.got) - got[1]  # noqa: E731
                           + sources[0].counts["health_dropped"] - dropped)
        wait_until(lambda: counted() == 40, 20, what="each report taken or dropped, once")
        assert len(a.got) == got[0], "nothing handed to a worker without room"
        assert sources[0].counts["health_dropped"] > dropped, "the group gave it some"
    finally:
        device.close()
        for s in sources:
            s.close()


def test_a_stream_of_the_earlier_version_is_changed_without_losing_a_tap(cluster):
    async def earlier():
        nc = await nats.connect(servers=list(cluster.nats_urls))
        try:
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name=STREAM, subjects=["tg.v1.*.up.>"],
                                             retention=RetentionPolicy.WORK_QUEUE,
                                             num_replicas=3))
            await js.add_consumer(STREAM, ConsumerConfig(
                durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT,
                filter_subject="tg.v1.*.up.>"))
            for i in range(3):  # taps and a health report that no worker took yet
                await js.publish("tg.v1.old-r1.up.clock", b'{"seq":%d}' % (i + 1))
            await js.publish("tg.v1.old-r1.up.health", b"{}")
        finally:
            await nc.close()

    asyncio.run(earlier())
    sink = Sink()
    source = start(cluster, sink, "hg-upgrade")
    try:
        wait_until(lambda: len(sink.got) == 4, 20, what="what the old stream held")
        assert sorted(p for t, p, _ in sink.got if t.endswith("/up/clock")) == [
            b'{"seq":1}', b'{"seq":2}', b'{"seq":3}']
        wait_until(lambda: stream_state(cluster) == (sorted(UP_SUBJECTS), 0), 20,
                   what="the stream on the new subjects, emptied by the acks")
    finally:
        source.close()
