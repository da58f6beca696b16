"""The MQTT ingest worker: the one module that owns an MQTT client.

paho's network thread only enqueues; one database thread drains the queue in batches, stores
them (fleet.ingest) and commits, then publishes the acks, then matches the new events (on
PostgreSQL a thread of its own matches, on its own connection, so acks never wait for it). A
crash anywhere before the commit loses nothing: no ack went out, so the devices resend. Pending
matches are redone at start.

Any number of identical workers may run: they share the ingest, and the once-per-fleet duties
(planning push, rollout driving, alert sweeps, the outbox) run only in the worker that holds the
database lease `fleet-duties` (fleet.lease), each loop checking before each step, so a dead
leader is replaced within about the lease's TTL.

On a NATS cluster (TELEGEST_NATS_URLS set) the up messages come through a JetStream consumer
instead (fleet.nats_transport), acked after the commit like the device acks; this module's
MQTT client then only publishes what goes down and reads the devices' state, over MQTT 3.1.1
(the gateway's only version), moving to the next listener of TELEGEST_MQTT_BROKERS when one
fails. What goes down does not wait behind that connection: acks, `down/sos`, update chunks and
commands go out as plain NATS messages on the consumer's connection (JetStreamSource.publish),
and the retained configs over four more MQTT connections per node, at QoS 1 with a bounded window
(fleet.down_path), each config first sent live as a NATS message (fleet.push, "Live first").
The batching, storing and acking below are the same for both.
"""
from __future__ import annotations

import argparse
import logging
import os
import queue
import secrets
import signal
import socket
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from fleet import alerts, outbox, retention, sos, visit_alerts, visit_series
from fleet import webpush  # noqa: F401  (registers the outbox's webpush channel)
from fleet.config import Settings
from fleet.db import SchemaNotReady, make_engine, prepare, session_factory
from fleet.down_path import RetainedPool
from fleet.ingest import ingest_batch
from fleet.lease import DUTIES, Leadership
from fleet.lifecycle import activate_contacted
from fleet.matching import match_pending
from fleet.mqtt_failover import Addresses
from fleet.nats_transport import DROP, RETRY, STORED, JetStreamSource
from fleet.push import ConfigPusher
from fleet.tap_trace import TapTrace
from fleet.updates import UpdateService

log = logging.getLogger("telegest.worker")

SHARED_TOPICS = ("$share/fleet/tg/v1/+/up/clock", "$share/fleet/tg/v1/+/up/health",
                 "$share/fleet/tg/v1/+/up/sos",
                 "$share/fleet/tg/v1/+/up/ota")
PLAIN_TOPIC = "tg/v1/+/up/#"
# Not shared: retained messages are not delivered on a shared subscription, and every worker
# may apply a state (idempotent); this is how a worker learns who is offline at start.
STATE_TOPIC = "tg/v1/+/state"
_QUEUE_MAX = 50_000  # paho's thread blocks beyond this: back-pressure, not loss
_MATCH_LIMIT = 5000
_MATCH_EVERY_S = 1.0
_PUSH_EVERY_S = 1.0  # planning push: a changed planning is on the broker within about this
SWITCH_INTERVAL_S = 0.001  # the GIL's, in a worker process (default 0.005)
_ALERT_SWEEP_S = 30.0  # the offline sweep (fleet.alerts); an alert waits at most this longer

Publish = Callable[[str, bytes], None]


def records_first(batch: list) -> list[list]:
    """The batch as one or two transactions: the clock events (what a device waits an ack
    for) and link states first, the health reports after. A tap's ack then waits for its own
    commit, not for the UPDATE of every device row whose report shared its batch (under 50,000
    devices' health, the p99 of tap to stored in docs/scaling.md)."""
    records, health = [], []
    for m in batch:
        (health if m[0].endswith("/up/health") else records).append(m)
    return [records, health] if records and health else [batch]


def _awaited(message) -> bool:
    """A clock batch: its device waits for the ack, so it is never held back for the batch
    window (an SOS never reaches the queue: `_on_up` stores it at once)."""
    return message[0].endswith("/up/clock")


def _senders(messages: list) -> set[str]:
    return {parts[2] for topic, *_ in messages
            if len(parts := topic.split("/")) > 3 and parts[0] == "tg"}


def _connection_lost(error: Exception | None) -> bool:
    """The database is away (or locked): storing message by message would fail the same."""
    return isinstance(error, (OperationalError, InterfaceError)) or (
        isinstance(error, DBAPIError) and error.connection_invalidated)


class IngestWorker:
    """`IngestWorker(settings)` or `IngestWorker(db_url, mqtt_host, mqtt_port)`."""

    def __init__(self, settings: Settings | str, mqtt_host: str | None = None,
                 mqtt_port: int | None = None, *, client_id: str | None = None,
                 shared: bool = True, protocol: str | None = None, batch_max: int = 500,
                 batch_wait_s: float = 0.05, publish: Publish | None = None,
                 push: bool = True, alert_sweep_s: float | None = _ALERT_SWEEP_S,
                 lease_ttl_s: float | None = None) -> None:
        if isinstance(settings, Settings):
            s = settings
        else:
            s = Settings(database_url=settings, mqtt_host=mqtt_host or "127.0.0.1",
                         mqtt_port=mqtt_port or 1883)
        self.settings = s
        self.nats_urls = s.nats_servers  # NATS mode: the up messages through JetStream
        # NATS's MQTT gateway speaks 3.1.1 only; the worker no longer subscribes to up there
        self.protocol = "v311" if self.nats_urls else (protocol or s.mqtt_protocol)
        self.shared = shared and self.protocol == "v5"
        self.addresses = Addresses(s.mqtt_addresses)  # where the MQTT client goes, in turn
        # On NATS, QoS 1 towards a subscriber is a JetStream consumer per device session, which
        # NATS 2.9.10 left stalled after a node loss (no acks reached the devices on the nodes
        # that stayed up); QoS 0 travels as plain NATS messages. Nothing is lost by it: a lost
        # ack is a resend, configs are retained and read again at each connect, commands are
        # offered again (docs/protocol.md, "On a NATS cluster").
        self.qos = 0 if self.nats_urls else 1
        self.source: JetStreamSource | None = None
        self.client_id = client_id or f"fleet-{socket.gethostname()}-{os.getpid()}"
        self.batch_max, self.batch_wait_s = batch_max, batch_wait_s
        self.publish: Publish = publish or self._down_publish
        self.down: RetainedPool | None = None  # NATS mode: the retained configs' connections
        self.queue: queue.Queue = queue.Queue(maxsize=_QUEUE_MAX)
        self.counts: Counter = Counter()
        self.trace = TapTrace()  # the slowest clock messages, stage by stage
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._match_thread: threading.Thread | None = None  # PostgreSQL only
        self._match_stop = threading.Event()
        self._drained = threading.Event()  # the drain loop found the queue empty
        # compete for the fleet-duties lease; the leader pushes plannings, drives rollouts
        # and sweeps alerts (False: this worker only ingests, --no-push)
        self.push = push
        self.lease_ttl_s = lease_ttl_s or s.lease_ttl_s
        self.leadership: Leadership | None = None
        self._leader_stop = threading.Event()
        self._leader_thread: threading.Thread | None = None
        self.pusher: ConfigPusher | None = None
        self._push_thread: threading.Thread | None = None
        self._update_thread: threading.Thread | None = None
        self.updates: UpdateService | None = None
        self.alert_sweep_s = alert_sweep_s  # None: no sweep, even when leader
        self._alert_thread: threading.Thread | None = None
        self._outbox_thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._engine = None
        self._sessions = None

    # -- counters ---------------------------------------------------------------------------
    @property
    def leader(self) -> bool:
        """Whether this worker does the fleet duties now (it holds a live lease)."""
        return self.leadership is not None and self.leadership.is_leader()

    @property
    def stored(self) -> int:
        return self.counts["stored"]

    @property
    def duplicates(self) -> int:
        return self.counts["duplicate"]

    @property
    def batches(self) -> int:
        return self.counts["batches"]

    @property
    def rejected(self) -> dict[str, int]:
        skip = {"stored", "duplicate", "batches", "messages", "health", "seq_gap", "errors",
                "acks", "matched", "alert_resolved", "emails_queued"}
        return {k: v for k, v in self.counts.items() if k not in skip and v
                and not k.startswith(("alert_opened_", "state_", "outbox_"))}

    @property
    def counters(self) -> dict:
        return {"stored": self.stored, "duplicates": self.duplicates, "batches": self.batches,
                "messages": self.counts["messages"], "seq_gap": self.counts["seq_gap"],
                "health": self.counts["health"], "errors": self.counts["errors"],
                "configs_pushed": self.pusher.counts["pushed"] if self.pusher else 0,
                "configs_announced": self.pusher.counts["announced"] if self.pusher else 0,
                "configs_reannounced": (self.pusher.counts["reannounced"] if self.pusher
                                        else 0),
                "leader": self.leader, "rejected": self.rejected,
                **({"jetstream": dict(self.source.counts)} if self.source else {}),
                **({"down": dict(self.down.counts)} if self.down else {})}

    # -- database side ----------------------------------------------------------------------
    def open_database(self) -> None:
        prepare(self.settings.database_url)  # SchemaNotReady: the owner must migrate
        self._engine = make_engine(self.settings.database_url)
        self._sessions = session_factory(self._engine)

    def process(self, messages: list, match: bool = True) -> list:
        """Store one batch, commit, publish the acks, then match (unless `match` is False:
        the drain loop defers matching while a backlog waits). Returns the acks.

        A batch that fails for another reason than a lost database is stored again one
        message at a time: a message the fleet cannot store (a bug's poison) holds back its
        own device only, not every device whose messages shared its batch."""
        acks, error = self._store(messages)
        if acks is not None:
            self._settle(messages, STORED)
        elif len(messages) > 1 and not _connection_lost(error):
            acks = []
            for i, message in enumerate(messages):
                one, error = self._store([message])
                if one is None and _connection_lost(error):
                    self._settle(messages[i:], RETRY)
                    break
                self._settle([message], DROP if one is None else STORED)
                acks += one or []
        else:
            self._settle(messages, RETRY if _connection_lost(error) else DROP)
        if acks is None:
            return []
        committed = time.time()
        self.counts["batches"] += 1
        self.counts["messages"] += len(messages)
        for ack in acks:
            try:
                self.publish(ack.topic, ack.payload)
                self.counts["acks"] += 1
            except Exception:
                log.exception("ack to %s not published", ack.device)
        self.trace.note(messages, committed, time.time())
        if match:
            self.match()
        return acks

    def _settle(self, messages: list, outcome: str) -> None:
        """JetStream's ack (after the commit), nak (the database is away: again soon) or
        term (the fleet cannot store it; the device resends it anyway) for the messages that
        came through it (a 4th item: fleet.nats_transport)."""
        handles = [m[3] for m in messages if len(m) > 3]
        if handles and self.source is not None:
            self.source.settle(handles, outcome)

    def _settle_one(self, handle, outcome: str) -> None:
        """The same for one message handled outside the batches (an update, an SOS); nothing
        for a message that came over MQTT (`handle` None)."""
        if handle is not None and self.source is not None:
            self.source.settle([handle], outcome)

    def _store(self, messages: list) -> tuple[list | None, Exception | None]:
        """(acks, None) once committed; (None, the error) when the transaction failed. The
        counters move only with a commit."""
        counts: Counter = Counter()
        messages = [m[:3] for m in messages]
        with self._sessions() as session:
            try:
                acks = ingest_batch(session, messages, counters=counts, source=self.client_id)
                # a provisioned device that got a message through the broker is active
                activate_contacted(session, _senders(messages))
                session.commit()
            except Exception as e:
                session.rollback()
                self.counts["errors"] += 1
                log.exception("%d message(s) failed; not acked, their devices will resend",
                              len(messages))
                return None, e
        self.counts.update(counts)
        return acks, None

    def match(self, rounds: int | None = None) -> int:
        """Match pending events until none is left (or for `rounds` chunks); returns how
        many were processed."""
        done = 0
        while True:
            with self._sessions() as session:
                try:
                    counts = match_pending(session, limit=_MATCH_LIMIT)
                    session.commit()
                except Exception:
                    session.rollback()
                    self.counts["errors"] += 1
                    log.exception("matching failed; the events stay pending")
                    return done
            n = counts["matched"] + counts["anomaly"] + counts["ignored"]
            self.counts["matched"] += n
            done += n
            if n < _MATCH_LIMIT or (rounds is not None and (rounds := rounds - 1) <= 0):
                return done

    def _drain(self) -> None:
        last_match = time.monotonic()
        while True:
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            # the batch window gathers health reports into one transaction; a clock batch
            # in it ends the wait (what is queued already still joins): its device waits
            batch = [first]
            deadline = time.monotonic() + self.batch_wait_s
            awaited = _awaited(first)
            while len(batch) < self.batch_max:
                left = 0 if awaited else deadline - time.monotonic()
                try:
                    batch.append(self.queue.get(timeout=left) if left > 0
                                 else self.queue.get_nowait())
                except queue.Empty:
                    break
                awaited = awaited or _awaited(batch[-1])
            # Durability first: while messages wait, store and ack them; match once the queue
            # is drained, or at least every second so the board never lags far behind.
            for part in records_first(batch):
                self.process(part, match=False)
            if self._match_thread is not None:  # PostgreSQL: matching runs beside
                if self.queue.empty():
                    self._drained.set()
            elif self.queue.empty():
                self.match()
                last_match = time.monotonic()
            elif time.monotonic() - last_match > _MATCH_EVERY_S:
                self.match(rounds=1)
                last_match = time.monotonic()

    def _match_loop(self) -> None:
        """PostgreSQL: matching in its own thread and connection, so that storing and acking
        never wait for it. Same rhythm as in the drain loop: all that is pending once the queue
        is drained, else a chunk a second."""
        while not self._match_stop.is_set():
            drained = self._drained.wait(_MATCH_EVERY_S)
            self._drained.clear()
            self.match(rounds=None if drained else 1)

    def _push_loop(self) -> None:
        term = self.leadership.term
        while not self._stop.is_set():
            if self.leader:
                if self.leadership.term != term:
                    # led again after another worker did: what the scans learnt is stale
                    term = self.leadership.term
                    self.pusher.restart()
                try:
                    self.pusher.poll()
                except Exception:
                    self.counts["errors"] += 1
                    log.exception("planning push failed; again in %.0f s", _PUSH_EVERY_S)
            self._stop.wait(_PUSH_EVERY_S)

    def sweep_alerts(self) -> None:
        """One offline sweep (fleet.alerts.sweep) and one of late and missed visits
        (fleet.visit_alerts), in one transaction."""
        with self._sessions() as session:
            try:
                now = datetime.now(timezone.utc)
                self.counts.update(alerts.sweep(session, now))
                self.counts.update(visit_alerts.sweep(session, now, self.settings.public_url))
                session.commit()
            except Exception:
                session.rollback()
                self.counts["errors"] += 1
                log.exception("offline sweep failed; again in %.0f s", self.alert_sweep_s)

    def _alert_loop(self) -> None:
        while not self._stop.wait(self.alert_sweep_s):
            if self.leader:
                self.sweep_alerts()

    def _outbox_loop(self) -> None:
        """The outbox's dispatcher (fleet.outbox): its own thread and sessions, so a slow SMTP
        server never holds back ingest."""
        while not self._stop.wait(self.settings.outbox_poll_s):
            if self.leader:
                try:
                    sent = outbox.dispatch_due(self._sessions, self.settings,
                                               datetime.now(timezone.utc))
                    self.counts.update({f"outbox_{k}": v for k, v in sent.items()
                                        if k != "waiting"})
                except Exception:
                    self.counts["errors"] += 1
                    log.exception("outbox dispatch failed; again in %d s",
                                  self.settings.outbox_poll_s)

    def run_retention(self) -> None:
        """One pass of the retention job (fleet.retention), in its own transaction."""
        with self._sessions() as session:
            try:
                run = retention.purge(session, datetime.now(timezone.utc))
                session.commit()
                self.counts.update({f"purged_{k}": v for k, v in run.purged.items()})
            except Exception:
                session.rollback()
                self.counts["errors"] += 1
                log.exception("retention job failed; again at its next turn")

    def extend_series(self) -> None:
        """The visit series expanded up to their rolling horizon (fleet.visit_series)."""
        with self._sessions() as session:
            try:
                made = visit_series.extend_all(session, datetime.now(timezone.utc))
                session.commit()
                self.counts["series_visits"] += made
            except Exception:
                session.rollback()
                self.counts["errors"] += 1
                log.exception("visit series expansion failed; again at its next turn")

    def _retention_loop(self) -> None:
        """Daily, by the lease holder only: a leader that starts runs it within a minute
        (with the visit series' expansion, also daily)."""
        last = None
        while not self._stop.wait(1.0 if last is None else 60.0):
            if not self.leader:
                continue
            now = time.monotonic()
            if last is None or now - last >= self.settings.retention_every_s:
                last = now
                self.run_retention()
                self.extend_series()

    # -- MQTT side --------------------------------------------------------------------------
    def _mqtt_publish(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=self.qos)

    def _down_publish(self, topic: str, payload: bytes) -> None:
        """A down message that is not retained: a plain NATS message on a cluster (never
        behind the gateway's retained stores), else on the MQTT connection."""
        if self.source is not None:
            self.source.publish(topic, payload)
        else:
            self._mqtt_publish(topic, payload)

    def _publish_retained(self, topic: str, payload: bytes, retain: bool) -> None:
        # paho keeps QoS 1 messages while the link is down and sends them on reconnect; a
        # QoS 0 one (NATS) it drops: raised, so the pusher sends that config again next poll
        info = self._client.publish(topic, payload, qos=self.qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and (
                self.qos == 0 or info.rc != mqtt.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"{topic} not published: {mqtt.error_string(info.rc)}")

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            who = self.settings.mqtt_username
            log.error("broker refused the connection: %s (%s); check TELEGEST_MQTT_USERNAME "
                      "and TELEGEST_MQTT_PASSWORD: the worker needs its own client in the "
                      "broker's dynamic security (docs/operations.md)", reason_code,
                      f"as {who!r}" if who else "anonymous")
            return
        if self.nats_urls:
            pass  # the up messages come through JetStream (fleet.nats_transport)
        elif self.shared:
            opts = SubscribeOptions(qos=1)
            client.subscribe([(t, opts) for t in SHARED_TOPICS])
        elif self.protocol == "v5":
            client.subscribe([(PLAIN_TOPIC, SubscribeOptions(qos=1))])
        else:
            client.subscribe(PLAIN_TOPIC, qos=1)
        client.subscribe(STATE_TOPIC, qos=self.qos)
        log.info("connected to %s:%d, subscribed (%s)", client.host, client.port,
                 "JetStream" if self.nats_urls else "shared" if self.shared else "plain")

    def _on_disconnect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if not self._stop.is_set():  # a NATS node gone: another one serves the same topics
            log.warning("disconnected from the broker (%s); reconnecting to %s:%d",
                        reason_code, *self.addresses.next(client))

    def _on_connect_fail(self, client, _userdata) -> None:
        log.warning("cannot reach the broker at %s:%d; retrying", client.host, client.port)
        self.addresses.next(client)

    def _on_message(self, _client, _userdata, msg) -> None:
        self._on_up(msg.topic, msg.payload)

    def _on_up(self, topic: str, payload: bytes, handle=None) -> None:
        """One message from a device: from paho's thread (`handle` None), or from the
        JetStream consumer's (`handle` its message, settled once stored)."""
        if topic.endswith("/up/ota"):  # chunk requests and update reports
            try:
                self.updates.handle(topic, payload)
            finally:
                self._settle_one(handle, STORED)
            return
        if topic.endswith("/state") and bytes(payload) == b"online" and self.pusher:
            # a device back while its new config is not yet retained: the live copy again
            self.pusher.reannounce(topic.split("/")[2])
        if topic.endswith("/up/sos"):  # rare and urgent: stored here, not batched
            stored = self.box_sos(topic, bytes(payload))
            self._settle_one(handle, STORED if stored else RETRY)
            return
        self.queue.put((topic, payload, time.time()) if handle is None
                       else (topic, payload, time.time(), handle))

    def box_sos(self, topic: str, payload: bytes) -> bool:
        """A reader box's SOS button (fleet.sos.handle_box): stored, then `down/sos`."""
        ident = topic.split("/")[2]
        with self._sessions() as session:
            try:
                answer = sos.handle_box(session, ident, payload, self.settings.public_url)
                session.commit()
            except Exception:
                session.rollback()
                self.counts["errors"] += 1
                log.exception("up/sos of %s not stored; the box sends it again", ident[:64])
                return False
        if answer is not None:
            self.counts["sos"] += 1
            self.publish(f"tg/v1/{ident}/down/sos", answer)
        return True

    def _make_client(self) -> mqtt.Client:
        v5 = self.protocol == "v5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else True)
        if self.settings.mqtt_username:
            client.username_pw_set(self.settings.mqtt_username, self.settings.mqtt_password)
        if self.settings.mqtt_tls:
            client.tls_set()
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect, client.on_message = self._on_connect, self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail  # a wrong or stopped broker, said
        return client

    def start(self) -> "IngestWorker":
        self._stop.clear()
        self.open_database()
        self.match()  # what a killed worker left pending
        if self.push:
            holder = f"{self.client_id[:180]}/{secrets.token_hex(3)}"  # new at each start
            self.leadership = Leadership(self._engine, holder, DUTIES, self.lease_ttl_s)
            self._leader_stop.clear()
            self.leadership.renew()  # a lone worker leads from the start
            self._leader_thread = threading.Thread(target=self.leadership.run,
                                                   args=(self._leader_stop,),
                                                   name="fleet-leader", daemon=True)
            self._leader_thread.start()
        self._thread = threading.Thread(target=self._drain, name="fleet-db", daemon=True)
        if self._engine.dialect.name == "postgresql":  # SQLite: one writer, matching in _drain
            self._match_stop.clear()
            self._match_thread = threading.Thread(target=self._match_loop, name="fleet-match",
                                                  daemon=True)
            self._match_thread.start()
        self._thread.start()
        self._client = self._make_client()
        # updates: every worker serves chunks; the leader also drives the rollouts
        self.updates = UpdateService(self._sessions, self._down_publish)
        self._update_thread = threading.Thread(target=self.updates.run, args=(self._stop,),
                                               kwargs={"drive": lambda: self.leader},
                                               name="fleet-updates", daemon=True)
        self._update_thread.start()
        props = None
        if self.protocol == "v5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
        host, port = self.addresses.now
        self._client.connect_async(host, port, keepalive=30, properties=props)
        self._client.loop_start()
        if self.nats_urls:
            s = self.settings
            self.source = JetStreamSource(
                self.nats_urls, self._on_up, lambda: _QUEUE_MAX - self.queue.qsize(),
                replicas=s.nats_stream_replicas, user=s.mqtt_username,
                password=s.mqtt_password, name=self.client_id, batch=self.batch_max).start()
        if self.push and self.nats_urls:  # the configs over connections of their own
            s = self.settings
            self.down = RetainedPool(s.mqtt_addresses, self.client_id,
                                     username=s.mqtt_username, password=s.mqtt_password,
                                     tls=s.mqtt_tls).start()
        if self.push:
            # on a cluster: a live copy of each config as a NATS message first, the retained
            # copies behind (fleet.push, "Live first")
            self.pusher = ConfigPusher(self._sessions, self.down.publish if self.down
                                       else self._publish_retained,
                                       announce=self.source.publish if self.down else None)
            self._push_thread = threading.Thread(target=self._push_loop, name="fleet-push",
                                                 daemon=True)
            self._push_thread.start()
        if self.push and self.alert_sweep_s:
            self._alert_thread = threading.Thread(target=self._alert_loop, name="fleet-alerts",
                                                  daemon=True)
            self._alert_thread.start()
        if self.push:
            self._outbox_thread = threading.Thread(target=self._outbox_loop, name="fleet-outbox",
                                                   daemon=True)
            self._outbox_thread.start()
            self._retention_thread = threading.Thread(target=self._retention_loop,
                                                      name="fleet-retention", daemon=True)
            self._retention_thread.start()
        return self

    def stop(self) -> None:
        """Stop taking messages, finish what is queued (acks included), disconnect."""
        self._stop.set()
        if self.source is not None:
            self.source.stop_fetching()
        if self._client is not None:
            self._client.unsubscribe(
                [STATE_TOPIC] if self.nats_urls else
                [*(SHARED_TOPICS if self.shared else [PLAIN_TOPIC]), STATE_TOPIC])
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.source is not None:  # what the drain stored is acked to JetStream
            self.source.close()
        if self._match_thread is not None:
            self._match_stop.set()
            self._drained.set()
            self._match_thread.join(timeout=30)
            self.match()  # what the last batches stored
        for thread in (self._push_thread, self._alert_thread, self._outbox_thread,
                       self._update_thread):
            if thread is not None:
                thread.join(timeout=30)
        if self._leader_thread is not None:  # the duties are stopped: hand the lease over
            self._leader_stop.set()
            self._leader_thread.join(timeout=30)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self.down is not None:
            self.down.stop()
        if self._engine is not None:
            self._engine.dispose()
        log.info("stopped: %s", self.counters)

    def run(self) -> None:
        """Start, then block until SIGINT or SIGTERM, then stop cleanly."""
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        while not done.wait(60):
            log.info("counters: %s", self.counters)
        self.stop()


def own_process() -> None:
    """What a worker sets for the process it owns (never for a test's): many of its threads
    wait on I/O (database, NATS, paho) beside CPU-bound ones (the pusher computing configs);
    with the default 5 ms switch interval each wake-up waited up to 5 ms for the GIL, and a
    batch is dozens of round trips."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.worker")
    parser.add_argument("--protocol", choices=["v5", "v311"], default=None)
    parser.add_argument("--client-id", default=None)
    parser.add_argument("--no-push", action="store_true",
                        help="never lead: only ingest (no planning push, rollouts or sweep)")
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    own_process()
    try:
        IngestWorker(settings, protocol=args.protocol, client_id=args.client_id,
                     batch_max=settings.batch_max,
                     batch_wait_s=settings.batch_wait_ms / 1000, push=not args.no_push,
                     alert_sweep_s=settings.alert_sweep_s).run()
    except SchemaNotReady as e:
        log.error("not started: %s", e)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
