"""The worker's NATS transport: the devices' up messages consumed through JetStream.

On a NATS cluster (docs/operations.md, "A NATS cluster") the devices still speak MQTT 3.1.1 to
any node, and the nodes' MQTT gateway turns topic `tg/v1/X/up/clock` into subject
`tg.v1.X.up.clock`. The stream `TG_UP` keeps the up subjects that must not be lost (clock, sos,
ota), replicated like the gateway's own streams, as a work queue: a message stays until a worker
acks it. Every worker fetches from the one durable pull consumer `fleet`, so each message goes
to one worker and adding a worker adds capacity.

Health reports do not go through the stream: 50,000 devices send 833 a second, and each
would be a replicated JetStream write and a replicated ack, most of the cluster's work and the
queue the taps waited in (docs/scaling.md). They are plain NATS messages taken by the workers'
queue group `fleet` (one worker each), like the MQTT worker's shared subscription: a report
that no worker takes (none connected, or the worker's queue full) is counted and gone, and the
next one comes a minute later. A worker that falls behind drops health, never a tap.

A message is acked (explicit ack) only after the database commit that stored it: a worker
killed before its commit leaves its messages to the consumer, which gives them to another
worker after `ACK_WAIT_S`. A batch whose commit failed because the database is away is
nak'ed (given again a second later); a message the fleet cannot store at all is terminated
(the device resends it anyway: the end-to-end ack of docs/protocol.md, never JetStream's, frees
its journal). Redeliveries are harmless: the fleet stores by (device, seq).

What goes down and is not retained (acks, `down/sos`, update chunks, commands) goes out here as
plain NATS core messages (`publish`): subject `tg.v1.X.down.ack` reaches the MQTT subscribers of
`tg/v1/X/down/ack` at QoS 0 (nats-server 2.9.10, tests/cluster/test_downpath.py), and a NATS
publish never waits behind the gateway's stores of retained messages. The retained configs
still need an MQTT client (NATS 2.9's gateway retains only what an MQTT client publishes with
the retain flag): fleet.down_path.

nats-py is asyncio: its loop runs in a thread of its own; the worker's threads hand acks over
with `settle`, which never waits.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

import nats
from nats.errors import ConnectionClosedError, NoServersError, TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

log = logging.getLogger("telegest.nats")

STREAM = "TG_UP"
CONSUMER = "fleet"
# what the worker subscribed to on Mosquitto (tg/v1/+/up/#), health apart (a queue group)
UP_SUBJECTS = ["tg.v1.*.up.clock", "tg.v1.*.up.sos", "tg.v1.*.up.ota"]
HEALTH_SUBJECT = "tg.v1.*.up.health"
QUEUE_GROUP = "fleet"
ACK_WAIT_S = 30.0  # a fetched message not settled within this goes to another worker
MAX_ACK_PENDING = 20_000  # fetched, not yet settled, all workers together
# one pull request asks for at most this many: the server fills the oldest waiting request
# first, so a request for 500 took every message of its second and the other workers' waited
# behind it (a test saw one of two workers store 150 of 150); 50 lets them take turns
FETCH_MAX = 50
# how long one pull request waits for messages. Not longer: a request whose wait ended on the
# client while the server still held it (the two clocks of one expiry race) takes the next
# messages, and nats-py hands those over only at the end of the fetch after (it waits for the
# rest of a batch until its own request expires): at 1 s the 50,000-device bench saw taps wait
# 0.97 to 1.0 s between the stream and the worker (fleet.tap_trace), so the wait bounds it
FETCH_WAIT_S = 0.25
MAX_STREAM_BYTES = 1 << 30  # a fleet away for long: the oldest go, devices resend them
NAK_DELAY_S = 1.0

# settle outcomes
STORED, RETRY, DROP = "stored", "retry", "drop"

Deliver = Callable[[str, bytes, Any], None]  # (MQTT topic, payload, handle)


def topic_of(subject: str) -> str:
    """`tg.v1.X.up.clock` -> `tg/v1/X/up/clock` (idents never hold a dot: fleet.lifecycle)."""
    return subject.replace(".", "/")


def subject_of(topic: str) -> str:
    """`tg/v1/X/down/ack` -> `tg.v1.X.down.ack`."""
    return topic.replace("/", ".")


def stream_config(replicas: int) -> StreamConfig:
    return StreamConfig(name=STREAM, subjects=UP_SUBJECTS, retention=RetentionPolicy.WORK_QUEUE,
                        storage=StorageType.FILE, num_replicas=replicas,
                        max_bytes=MAX_STREAM_BYTES, description="telegest: devices' up messages")


def consumer_config() -> ConsumerConfig:
    """No filter: every subject of the stream (NATS 2.9 takes one filter subject at most)."""
    return ConsumerConfig(durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT,
                          ack_wait=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING,
                          description="telegest fleet workers")


class JetStreamSource:
    """Fetches the up messages for one worker and settles them once told.

    `deliver(topic, payload, handle)` is called in the source's thread for each message;
    `room()` says how many more the worker can take now (its queue's free places): the source
    fetches no more than that, so the worker's queue never blocks the loop."""

    def __init__(self, urls: list[str], deliver: Deliver, room: Callable[[], int], *,
                 replicas: int, user: str | None = None, password: str | None = None,
                 name: str = "fleet", batch: int = 500) -> None:
        self.urls, self.deliver, self.room = urls, deliver, room
        self.replicas, self.user, self.password, self.name = replicas, user, password, name
        self.batch = batch
        self.counts = {"fetched": 0, "acked": 0, "naked": 0, "terminated": 0, "ack_errors": 0,
                       "down": 0, "down_dropped": 0, "health": 0, "health_dropped": 0}
        self.ready = threading.Event()  # stream and consumer there, fetching
        self.error = ""  # why it is not ready, for the log and the tests
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._fetching = threading.Event()
        self._nc = None
        self._health = None  # the queue group's subscription (kept across reconnects)

    # -- the worker's side (any thread) -----------------------------------------------------
    def start(self) -> "JetStreamSource":
        self._fetching.set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fleet-nats",
                                        daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        return self

    def settle(self, handles: list, outcome: str) -> None:
        """Ack (`STORED`), nak (`RETRY`) or terminate (`DROP`) these messages; never waits."""
        if handles and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(
                lambda: self._loop.create_task(self._settle(handles, outcome)))

    def publish(self, topic: str, payload: bytes) -> None:
        """A down message (not retained) as a plain NATS message on the subject of `topic`;
        never waits. Raises ConnectionError when there is no NATS connection (none yet, or
        closed); while nats-py reconnects it buffers what is published and sends it after. At
        most once, like the QoS 0 it reaches the device at: a lost ack is a resend."""
        nc = self._nc
        if nc is None or nc.is_closed or self._loop is None or self._loop.is_closed():
            self.counts["down_dropped"] += 1
            raise ConnectionError(f"{topic} not published: no NATS connection")
        self._loop.call_soon_threadsafe(
            lambda: self._loop.create_task(self._publish(nc, subject_of(topic), payload)))

    async def _publish(self, nc, subject: str, payload: bytes) -> None:
        try:
            await nc.publish(subject, bytes(payload))
            self.counts["down"] += 1
        except Exception as e:  # closed meanwhile, or the reconnect buffer full
            self.counts["down_dropped"] += 1
            log.debug("down message on %s not published (%s)", subject, e)

    def stop_fetching(self) -> None:
        """No more messages; what was fetched may still be settled."""
        self._fetching.clear()

    def close(self, timeout: float = 10.0) -> None:
        """Send the settlements still queued, then close the connection and the loop."""
        self._fetching.clear()
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout)
        except Exception:
            log.warning("NATS connection not closed cleanly", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._loop.close()

    # -- the loop's side --------------------------------------------------------------------
    async def _run(self) -> None:
        while self._fetching.is_set():
            try:
                await self._connect()
                sub = await self._subscribe()
                self.ready.set()
                self.error = ""
                await self._fetch_loop(sub)
            except Exception as e:  # the cluster away, no JetStream quorum yet: said, retried
                self.ready.clear()
                why = f"{type(e).__name__}: {e}"
                if why != self.error:
                    log.warning("JetStream consumer not ready (%s); retrying", why)
                self.error = why
                await asyncio.sleep(1.0)

    async def _connect(self) -> None:
        if self._nc is not None and self._nc.is_connected:
            return
        if self._nc is not None:
            await self._drop()

        async def said(e: Exception) -> None:
            log.warning("NATS: %s", e)

        async def moved() -> None:
            log.info("NATS: connected to %s", self._nc.connected_url.netloc)

        opts: dict = dict(servers=self.urls, name=self.name, max_reconnect_attempts=-1,
                          reconnect_time_wait=0.5, connect_timeout=2, error_cb=said,
                          reconnected_cb=moved, allow_reconnect=True)
        if self.user:
            opts.update(user=self.user, password=self.password)
        self._nc = await nats.connect(**opts)

    async def _drop(self) -> None:
        nc, self._nc, self._health = self._nc, None, None
        try:
            await nc.close()
        except Exception:
            pass

    async def _subscribe(self):
        js = self._nc.jetstream(timeout=5)
        config = stream_config(self.replicas)
        try:
            info = await js.stream_info(STREAM)
            if sorted(info.config.subjects or []) != sorted(UP_SUBJECTS):
                await self._upgrade(js, config)
        except NotFoundError:
            try:
                await js.add_stream(config)
            except BadRequestError as e:  # another worker made it meanwhile
                if e.err_code != 10058:  # stream name already in use
                    raise
        try:  # made by the first worker, bound to by the others
            await js.consumer_info(STREAM, CONSUMER)
        except NotFoundError:
            try:
                await js.add_consumer(STREAM, consumer_config())
            except BadRequestError:  # another worker's, made meanwhile: else said, retried
                await js.consumer_info(STREAM, CONSUMER)
        if self._health is None:
            self._health = await self._nc.subscribe(HEALTH_SUBJECT, queue=QUEUE_GROUP,
                                                    cb=self._on_health)
        log.info("stream %s (%d replicas), consumer %s: fetching; health in queue group %s",
                 STREAM, self.replicas, CONSUMER, QUEUE_GROUP)
        return await js.pull_subscribe_bind(CONSUMER, STREAM)

    async def _upgrade(self, js, config) -> None:
        """A stream made by an earlier version (all of `tg.v1.*.up.>`, health included): its
        consumer filtered on that subject, which the new subjects do not contain, so it goes
        first (what it had fetched and not acked comes again: stored once by (device, seq))."""
        try:
            old = await js.consumer_info(STREAM, CONSUMER)
            if old.config.filter_subject:
                await js.delete_consumer(STREAM, CONSUMER)
                log.warning("consumer %s filtered on %s: made again without a filter", CONSUMER,
                            old.config.filter_subject)
        except NotFoundError:
            pass
        await js.update_stream(config)
        log.warning("stream %s now keeps %s (health through queue group %s)", STREAM,
                    ", ".join(UP_SUBJECTS), QUEUE_GROUP)

    async def _on_health(self, m) -> None:
        """A health report from the queue group: to the worker unless its queue is full (then
        dropped and counted; the device reports again a minute later)."""
        if self.room() <= 0:
            self.counts["health_dropped"] += 1
            return
        self.counts["health"] += 1
        self.deliver(topic_of(m.subject), m.data, None)

    async def _fetch_loop(self, sub) -> None:
        while self._fetching.is_set():
            n = min(self.batch, self.room(), FETCH_MAX)
            if n <= 0:  # the worker's queue is full: back-pressure, the stream keeps them
                await asyncio.sleep(0.05)
                continue
            try:
                msgs = await sub.fetch(n, timeout=FETCH_WAIT_S)
            except (NatsTimeout, asyncio.TimeoutError):  # nothing came meanwhile
                continue
            except (ConnectionClosedError, NoServersError):
                raise
            self.counts["fetched"] += len(msgs)
            for m in msgs:
                self.deliver(topic_of(m.subject), m.data, m)

    async def _settle(self, handles: list, outcome: str) -> None:
        for m in handles:
            try:
                if outcome == STORED:
                    await m.ack()
                    self.counts["acked"] += 1
                elif outcome == RETRY:
                    await m.nak(delay=NAK_DELAY_S)
                    self.counts["naked"] += 1
                else:
                    await m.term()
                    self.counts["terminated"] += 1
            except Exception as e:  # the link went: JetStream gives it again after ACK_WAIT_S
                self.counts["ack_errors"] += 1
                log.debug("settling a message failed (%s); it comes again", e)

    async def _close(self) -> None:
        runner = [t for t in asyncio.all_tasks()
                  if getattr(t.get_coro(), "__name__", "") == "_run"]
        for t in runner:
            t.cancel()
        await asyncio.gather(*runner, return_exceptions=True)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
                   and not t.done()
                   and getattr(t.get_coro(), "__name__", "") in ("_settle", "_publish")]
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self._nc is not None:
            try:
                await self._nc.flush(timeout=2)
            except Exception:
                pass
            await self._drop()


def wait_ready(source: JetStreamSource, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if source.ready.wait(0.1):
            return True
    return source.ready.is_set()
