"""The one resilient MQTT layer: ReaderCore's messages over the non-blocking client
(firmware/runtime/mqtt.py), through `open_stream` (firmware/runtime/net.py on the box, a fake
network in tests).

Everything about outages stays here and in the client: connect with a retained last will
`offline` on tg/v1/<id>/state, publish a retained `online`, subscribe to tg/v1/<id>/down/+
and down/config/+ after every (re)connect (again a second later if refused), ping, and on any error close and reconnect with back-off. With a CA
certificate (`ca`, the provisioned PEM) the stream is TLS, verified against that CA only
(firmware/runtime/tls.py); it never falls back to a clear connection. Nothing above retries:
ReaderCore decides what to (re)send, and the journal keeps every event until the fleet's ack,
so an outage costs time, never events. With several broker addresses (`brokers`, a cluster's
nodes) the client moves to the next one when a connect fails or the broker drops or goes
silent (round robin, the back-off once per full round: mqtt.py); ReaderCore resends what the
fleet has not acked on whichever node it reaches.

`run()` is the client's task; `poll()` (the net task, every 100 ms) only moves messages
between ReaderCore and the client's queues, so neither it nor the tap path ever waits for
the network.
"""
from firmware.codec import topic
from firmware.runtime.backoff import Backoff
from firmware.runtime.mqtt import MqttClient


class MqttLink:
    def __init__(self, core, open_stream, device_id, host, port=1883, user="", password="",
                 keepalive=60, backoff=None, connect_timeout=5, ca="", clock=None, log=None,
                 brokers=None):
        self.core = core
        self.device_id = device_id
        self.client = c = MqttClient(open_stream, device_id, keepalive,
                                     backoff or Backoff(1000, 60000),
                                     connect_timeout * 1000, clock=clock)
        if log is not None:
            c.log = lambda m: log("mqtt: %s" % m)
        t_state = topic(device_id, "state")
        c.will = (t_state, b"offline", True, 1)
        c.birth = (t_state, b"online", True, 1)
        # not down/#: NATS 2.9's MQTT gateway hands a retained config to a new '#' filter only
        # about half of the time (docs/protocol.md, "On a NATS cluster"); these are the
        # protocol's two levels, the same topics. QoS 0: with a clean session QoS 1 adds no
        # delivery (nothing is kept across a drop; the acks are end to end and the configs
        # retained), and on a NATS cluster each QoS 1 subscription is a JetStream consumer,
        # which 50,000 devices could not even connect with (docs/scaling.md)
        c.subs = [(topic(device_id, "down/+"), 0), (topic(device_id, "down/config/+"), 0)]
        self.ca = ""
        self._tls = None  # the SSLContext made from ca, once
        self._session = 0  # the client's session ReaderCore last heard of
        self._health = None  # latest health message, one slot: an old report is worthless
        self.published = 0
        self.received = 0
        self.health_sent = 0
        self.health_replaced = 0  # reports overwritten before they could be sent
        self.tls_error = ""
        self.configure(host, port, user, password, ca, brokers)

    def configure(self, host, port, user="", password="", ca="", brokers=None):
        """New broker settings: the client closes and reconnects at once (the technician is
        waiting). `brokers` ([(host, port), ...]), when not empty, replaces host and port.
        A CA that does not load leaves the client without a host: no clear connection in
        its place."""
        if brokers:
            host, port = brokers[0]
        self.host, self.port, self.user, self.password = host, port, user, password
        if ca != self.ca:
            self.ca, self._tls = ca, None
        self.tls_error = ""
        if ca and self._tls is None:
            try:
                from firmware.runtime.tls import client_context
                self._tls = client_context(ca)
            except ValueError as e:
                self.tls_error = "ValueError: %s" % e
                self.client.last_error = self.tls_error
                self.client.failures += 1
                self.client.configure("", port)
                return
        self.client.configure(host, port, user, password, self._tls if ca else None, brokers)

    async def run(self):
        await self.client.run()

    def up(self):
        return self.client.up()

    def status(self):
        if not self.host:
            return "unconfigured"
        return "up" if self.client.up() else "down"

    def tls(self):
        return bool(self.ca)

    def send_health(self, msg):
        """Queue a (topic, payload, qos) health report; sent at the next poll while up."""
        if self._health is not None:
            self.health_replaced += 1
        self._health = msg

    def close(self):
        self.client.stop()

    def poll(self, now, online=True):
        """Hand the client the Wi-Fi state, ReaderCore what came in (and a new session: the
        broker may have lost anything not acked, resend), the client what ReaderCore has to
        send. Returns at once; never raises."""
        c = self.client
        c.online = online
        core = self.core
        if c.session != self._session and c.up():
            self._session = c.session
            core.on_connect()
        while True:
            m = c.get()
            if m is None:
                break
            self.received += 1
            core.on_message(m[0], bytes(m[1]))  # never raises
        if not c.up():
            return
        if c.room() > 0:
            for t, payload, qos in core.outgoing(int(core.clock.time())):
                if c.publish(t, payload, False, qos):
                    self.published += 1
        h = self._health
        if h is not None and c.room() > 0 and c.publish(h[0], h[1], False, h[2]):
            self._health = None
            self.health_sent += 1

    # the counters the console and health read
    @property
    def connects(self):
        return self.client.connects

    @property
    def failures(self):
        return self.client.failures

    @property
    def drops(self):
        return self.client.drops

    @property
    def last_error(self):
        return self.client.last_error

    def counters(self):
        c = self.client
        return {"mqtt_connects": c.connects, "mqtt_failures": c.failures,
                "mqtt_drops": c.drops, "mqtt_refused": c.refused, "mqtt_timeouts": c.timeouts,
                "published": self.published, "received": self.received,
                "health_replaced": self.health_replaced, "mqtt_out_dropped": c.out_dropped,
                "mqtt_in_dropped": c.in_dropped, "mqtt_malformed": c.malformed,
                "mqtt_unknown_acks": c.unknown_acks, "mqtt_oversize": c.oversize,
                "mqtt_retransmitted": c.retransmitted, "mqtt_error": c.last_error,
                "mqtt_broker": "%s:%d" % (c.host, c.port), "mqtt_failovers": c.failovers}
