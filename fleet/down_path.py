"""The retained configs on a NATS cluster: several MQTT connections, a bounded window each.

NATS 2.9's MQTT gateway stores a retained message in JetStream (`$MQTT_rmsgs`, replicated)
inside the read loop of the connection that published it. With one connection and QoS 0, 50,000
configs queued thousands of stores ahead of the worker's PINGREQ: the link dropped on keep-alive
several times a run, and what was published in the gaps was lost (docs/scaling.md).

Here each config goes at QoS 1 over one of `connections` MQTT 3.1.1 clients (by default
`PER_NODE` per node: the gateway stores each connection's messages one after the other in that
connection's read loop, a synchronous request to the stream's leader, so the stores of several
connections run side by side and a window of many in flight on one connection does not). The
gateway answers the PUBACK after its store, so:
- at most `inflight` unanswered publishes per connection are on the wire (paho's window): a
  PINGREQ waits behind at most that many stores;
- at most `window` per connection are queued or on the wire: `publish` waits for room (up to
  `wait_s`, then raises ConnectionError: the pusher sends that config again at its next poll),
  so memory stays bounded whatever the fleet's size;
- at most `rate` messages a second over all connections (400 by default): the retained copies
  come behind the live ones (fleet.push), and their stores compete with the taps' for the
  nodes;
- `publish` returns paho's MessageInfo: `is_published()` once the gateway stored it
  (fleet.push counts a config as pushed only then, and sends it again when it never is).

One device's messages (the parts of its config, then the manifest) all go over the same
connection (chosen from its ident), so they are stored in order. A connection that drops moves
to the next node (fleet.mqtt_failover) and paho sends its unanswered QoS 1 publishes again
there; while it is down, `publish` refuses the devices it carries (the pusher retries them).
"""
from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import Counter

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet.mqtt_failover import Addresses

log = logging.getLogger("telegest.down")

PER_NODE = 4  # connections per node address (docs/scaling.md, "The down path")
INFLIGHT = 20  # unanswered QoS 1 publishes per connection (paho's window)
WINDOW = 500  # queued in paho or unanswered, per connection: `publish` waits beyond
WAIT_S = 10.0  # how long `publish` waits for room before refusing
# retained messages a second, all connections together: the devices connected have their
# config live already (fleet.push, "Live first"), and unpaced stores (760 a second) doubled
# the taps' p99 while they ran (docs/scaling.md, "Live first, health apart")
RATE = 400.0


class RetainedPool:
    def __init__(self, addresses: list[tuple[str, int]], client_id: str, *,
                 connections: int | None = None, username: str | None = None,
                 password: str | None = None, tls: bool = False, keepalive: int = 30,
                 inflight: int = INFLIGHT, window: int = WINDOW, wait_s: float = WAIT_S,
                 rate: float | None = RATE) -> None:
        addresses = list(dict.fromkeys(addresses))
        if not addresses:
            raise ValueError("no broker address")
        n = connections or len(addresses) * PER_NODE
        if n < 1:
            raise ValueError(f"connections must be at least 1, not {n}")
        self.wait_s, self.keepalive = wait_s, keepalive
        self.rate = rate  # None: unpaced
        self._next = 0.0  # monotonic time the next message may go (the pacing)
        self._pace = threading.Lock()
        self.counts: Counter = Counter()
        self._lanes = []
        for i in range(n):
            # connection i starts on node i mod n and goes round the others from there
            ring = addresses[i % len(addresses):] + addresses[:i % len(addresses)]
            self._lanes.append(_Lane(i, Addresses(ring), f"{client_id[:100]}-down{i}",
                                     username, password, tls, inflight, window, self.counts))

    @property
    def connections(self) -> int:
        return len(self._lanes)

    def start(self) -> "RetainedPool":
        for lane in self._lanes:
            lane.start(self.keepalive)
        return self

    def wait_connected(self, timeout: float) -> bool:
        return all(lane.connected.wait(timeout) for lane in self._lanes)

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> mqtt.MQTTMessageInfo:
        """Queue one message (QoS 1) on the connection of its device; returns paho's
        MessageInfo (`is_published()` once the gateway answered). Raises ConnectionError when
        that connection is down or stays full for `wait_s`."""
        parts = topic.split("/")
        key = parts[2] if len(parts) > 2 else topic
        lane = self._lanes[zlib.crc32(key.encode()) % len(self._lanes)]
        self._wait_turn()
        return lane.publish(topic, payload, retain, self.wait_s)

    def _wait_turn(self) -> None:
        """At most `rate` messages a second (a caller sleeps for its turn; bursts of up to a
        tenth of a second's worth go at once)."""
        if not self.rate:
            return
        with self._pace:  # `publish` may be called from any thread
            now = time.monotonic()
            self._next = max(self._next, now - 0.1) + 1.0 / self.rate
            delay = self._next - now
            if delay <= 1e-6:  # its turn now (not a float's rounding)
                return
            self.counts["paced_s"] += delay
        time.sleep(delay)

    def stop(self) -> None:
        for lane in self._lanes:
            lane.stop()


class _Lane:
    """One MQTT connection of the pool and its window."""

    def __init__(self, i: int, addresses: Addresses, client_id: str, username, password,
                 tls: bool, inflight: int, window: int, counts: Counter) -> None:
        self.i, self.addresses, self.counts = i, addresses, counts
        self.room = threading.BoundedSemaphore(window)
        self.connected = threading.Event()
        self.stalled = False  # its window stayed full for wait_s: refuse at once until a PUBACK
        self.stopping = False
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv311, clean_session=True)
        if username:
            c.username_pw_set(username, password)
        if tls:
            c.tls_set()
        c.max_inflight_messages_set(inflight)
        c.max_queued_messages_set(0)  # the window bounds it
        c.reconnect_delay_set(min_delay=1, max_delay=10)
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_connect_fail, c.on_publish = self._on_connect_fail, self._on_publish
        self.client = c

    def start(self, keepalive: int) -> None:
        self.client.connect_async(*self.addresses.now, keepalive=keepalive)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool,
                wait_s: float) -> mqtt.MQTTMessageInfo:
        if not self.connected.is_set():
            self.counts["refused_down"] += 1
            raise ConnectionError(f"{topic} not published: down connection {self.i} is away")
        if not self.room.acquire(timeout=0 if self.stalled else wait_s):
            self.stalled = True
            self.counts["refused_full"] += 1
            raise ConnectionError(f"{topic} not published: down connection {self.i} "
                                  f"answered nothing for {wait_s:.0f} s")
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            # the link dropped just now: paho keeps it and sends it after the reconnect (its
            # PUBACK frees the room), but its MessageInfo raises on is_published(): refused,
            # the pusher sends the config again
            self.counts["refused_down"] += 1
            raise ConnectionError(f"{topic} not published: down connection {self.i} is away")
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.room.release()  # not queued at all
            self.counts["refused"] += 1
            raise ConnectionError(f"{topic} not published: {mqtt.error_string(info.rc)}")
        self.counts["published"] += 1  # queued; paho sends it (again after a reconnect)
        return info

    def _on_publish(self, _client, _userdata, _mid, _reason, _props) -> None:
        self.counts["stored"] += 1
        self.stalled = False
        try:
            self.room.release()
        except ValueError:  # a PUBACK for a message published before a restart
            pass

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            log.error("down connection %d refused by %s:%d: %s", self.i, client.host,
                      client.port, reason_code)
            return
        self.connected.set()
        self.counts["connects"] += 1
        log.info("down connection %d to %s:%d", self.i, client.host, client.port)

    def _on_disconnect(self, client, _userdata, _flags, reason_code, _props) -> None:
        self.connected.clear()
        if not self.stopping:
            self.counts["disconnects"] += 1
            log.warning("down connection %d lost (%s); reconnecting to %s:%d", self.i,
                        reason_code, *self.addresses.next(client))

    def _on_connect_fail(self, client, _userdata) -> None:
        log.warning("down connection %d cannot reach %s:%d; retrying", self.i, client.host,
                    client.port)
        self.addresses.next(client)

    def stop(self) -> None:
        self.stopping = True
        self.client.disconnect()
        self.client.loop_stop()
