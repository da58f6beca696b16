"""The one resilient MQTT layer, over micropython-lib's umqtt.simple (or anything shaped
like it: tests pass a fake, a CPython adapter can pass a real socket client).

Everything about outages stays here: connect with a retained last will `offline` on
tg/v1/<id>/state, publish a retained `online`, subscribe to tg/v1/<id>/down/# after every
(re)connect, ping, and on any error close the client and reconnect with back-off. With a CA
certificate (`ca`, the provisioned PEM) the link speaks TLS and verifies the broker against
that CA only (firmware/runtime/tls.py); it never falls back to a clear connection. Nothing
above retries: ReaderCore decides what to (re)send, and the journal keeps every event until
the fleet's ack, so an outage costs time, never events.
"""
from firmware.codec import topic
from firmware.runtime.backoff import Backoff
from firmware.ticks import due, ticks_add

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

_DRAIN = const(8)  # incoming messages handled per poll


class MqttLink:
    def __init__(self, core, factory, device_id, host, port=1883, user="", password="",
                 keepalive=60, backoff=None, connect_timeout=5, ca=""):
        self.core = core
        # (client_id, host, port, user, password, keepalive[, ssl=SSLContext]) -> client
        self.factory = factory
        self.ca = ca
        self._tls = None  # the SSLContext made from ca, once
        self.device_id = device_id
        self.host, self.port, self.user, self.password = host, port, user, password
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.backoff = backoff or Backoff(1000, 60000)
        self.client = None
        self._t_state = topic(device_id, "state")
        self._t_down = topic(device_id, "down/#")
        self._retry = None  # tick of the next connect attempt
        self._ping = None  # tick of the next keepalive ping
        self._health = None  # latest health message, one slot: an old report is worthless
        self.connects = 0
        self.failures = 0  # connect attempts that failed
        self.drops = 0  # established connections lost
        self.published = 0
        self.received = 0
        self.health_sent = 0
        self.health_replaced = 0  # reports overwritten before they could be sent
        self.last_error = ""

    def configure(self, host, port, user="", password="", ca=""):
        """New broker settings: close and reconnect at once (the technician is waiting)."""
        self.host, self.port, self.user, self.password = host, port, user, password
        if ca != self.ca:
            self.ca, self._tls = ca, None
        self.close()
        self._retry = None
        self.backoff.reset()

    def up(self):
        return self.client is not None

    def status(self):
        if not self.host:
            return "unconfigured"
        return "up" if self.client is not None else "down"

    def send_health(self, msg):
        """Queue a (topic, payload, qos) health report; sent at the next poll while up."""
        if self._health is not None:
            self.health_replaced += 1
        self._health = msg

    def _on_message(self, t, msg):
        self.received += 1
        if type(t) is not str:
            t = bytes(t).decode()
        self.core.on_message(t, bytes(msg))  # never raises

    def tls(self):
        return bool(self.ca)

    def _connect(self, now):
        args = (self.device_id, self.host, self.port, self.user, self.password, self.keepalive)
        if self.ca:
            if self._tls is None:
                from firmware.runtime.tls import client_context
                self._tls = client_context(self.ca)  # ValueError: a failed attempt, said
            c = self.factory(*args, ssl=self._tls)
        else:
            c = self.factory(*args)
        c.set_callback(self._on_message)
        c.set_last_will(self._t_state, b"offline", True, 1)
        self.client = c  # from here on, a failure closes it
        c.connect(True, self.connect_timeout)
        c.subscribe(self._t_down, 1)
        c.publish(self._t_state, b"online", True, 1)
        self.connects += 1
        self.backoff.reset()
        self._ping = ticks_add(now, self.keepalive * 500)
        self.core.on_connect()  # the broker may have lost anything not acked: resend

    def close(self, clean=True):
        c, self.client = self.client, None
        if c is None:
            return
        try:
            if clean:  # a will is not sent on a clean disconnect: say it ourselves
                c.publish(self._t_state, b"offline", True, 0)
                c.disconnect()
            else:
                c.sock.close()
        except Exception:
            pass

    def _fail(self, now, e, connecting):
        self.last_error = "%s: %s" % (type(e).__name__, e)
        if connecting:
            self.failures += 1
        else:
            self.drops += 1
        self.close(False)
        self._retry = ticks_add(now, self.backoff.next())

    def poll(self, now, online=True):
        """Connect or reconnect when due, deliver what came in, publish what ReaderCore has
        to send, ping. Never raises (umqtt raises OSError, MQTTException, AssertionError)."""
        if self.client is None:
            if not self.host or not online or not due(now, self._retry):
                return
            try:
                self._connect(now)
            except Exception as e:
                self._fail(now, e, True)
                return
        elif not online:  # Wi-Fi went: the socket is dead, do not wait for it to say so
            self._fail(now, OSError("wifi down"), False)
            return
        c = self.client
        try:
            for _ in range(_DRAIN):
                if c.check_msg() is None:
                    break
            for t, payload, qos in self.core.outgoing(int(self.core.clock.time())):
                c.publish(t, payload, False, qos)  # QoS 1: returns after the PUBACK
                self.published += 1
                self._ping = ticks_add(now, self.keepalive * 500)
            h = self._health
            if h is not None:
                c.publish(h[0], h[1], False, h[2])
                self._health = None
                self.health_sent += 1
            if due(now, self._ping):
                c.ping()
                self._ping = ticks_add(now, self.keepalive * 500)
        except Exception as e:
            self._fail(now, e, False)
