"""A virtual reader box: the firmware's own logic on CPython, simulated hardware, real MQTT.

The journal lives in a directory (the box's flash), the decision and the sender are the
firmware's `ReaderCore`, and the network is a paho client speaking MQTT 3.1.1 like the box's
client (firmware/runtime/mqtt.py). A tap comes from `tap()` (tests, `telegest device tap`
through the control topic `sim/v1/<device>/tap`). Killing the process is a power cut: the
journal on disk is what the next start finds. Given the broker's CA (`ca`, PEM text, as provisioned on a box) it speaks TLS
and verifies the broker with the firmware's own context (firmware/runtime/tls.py); a broker it
cannot verify is logged with the reason (`link_error`) and retried, the journal kept.
Given more broker addresses (`brokers`: a NATS cluster's MQTT listeners) it moves to the next
one whenever a connection fails or is lost, round the list, as the firmware does with its own.

It subscribes to `down/+` and `down/config/+` (the two levels the protocol uses), not `down/#`:
NATS 2.9.10's MQTT gateway hands a retained message to a new `#` subscription only about half
of the time (docs/protocol.md, "On a NATS cluster"), and a box must get its retained config.
"""
from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from firmware.journal import Journal
from firmware.ota import boot as ota_boot
from firmware.ota.updater import Updater
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.tls import client_context
from firmware.sos import SosButton
from fleet.mqtt_failover import Addresses
from tools.sim.hardware import SimClock, SimFeedback

log = logging.getLogger("telegest.sim")

SIM_TAP_TOPIC = "sim/v1/{device}/tap"


class VirtualReader:
    def __init__(
        self,
        device_id: str,
        host: str,
        port: int,
        journal_dir: str | Path,
        config: dict,
        clock: SimClock | None = None,
        ack_timeout: float = 5.0,
        pump_interval: float = 0.02,
        keepalive: int = 10,
        max_records: int = 2000,
        username: str | None = None,
        password: str | None = None,
        fw: str = "0.1.0",
        trust_keys: list[str] | None = None,
        ota_deadline_s: float = 120,
        ca: str | None = None,
        brokers: list[tuple[str, int]] | None = None,
    ) -> None:
        """`username`/`password`: the device's broker credentials (from provisioning); without
        them it connects anonymously, as on a development broker. Updates (firmware/ota) are
        installed in `<journal_dir>.ota/` and a reboot rebuilds the core from it (this
        process does not import the slot's code: the box does, through sys.path);
        `reader_status` is what its health reports, hence what a trial boot is judged on.
        `ca`: the broker's CA certificate (PEM): TLS, the broker verified against it only.
        `brokers`: more (host, port) to move to, in turn, when a connection fails."""
        self.device_id = device_id
        self.addresses = Addresses([(host, port), *(brokers or [])])
        self.clock = clock or SimClock()
        self.feedback = SimFeedback()
        self.config = config
        self.journal_dir, self.max_records, self.ack_timeout = journal_dir, max_records, ack_timeout
        self.ota_root = str(journal_dir) + ".ota"
        self.factory_fw, self.trust_keys, self.ota_deadline_s = fw, trust_keys, ota_deadline_s
        self.reader_status = "ok"
        self.reboots = 0
        self._boot()
        self.pump_interval = pump_interval
        self.keepalive = keepalive
        self.connected = threading.Event()
        self._lock = threading.RLock()
        self._running = False
        self._pump: threading.Thread | None = None
        self.username, self.password = username, password
        self.refused: list[str] = []  # CONNACK refusals, newest last
        self.sub_refused = 0  # SUBACKs with a refused down filter (asked again)
        self._resubscribe_at = 0.0
        self._retry_filters: list[str] = []
        self._asked: dict[int, list[str]] = {}  # SUBSCRIBE mid -> its filters
        self._said_control = False
        self.ca = ca
        self.tls = client_context(ca) if ca else None  # ValueError: a CA it cannot load
        self.link_error = ""  # why the last connection attempt failed, "" once connected
        self.client = self._make_client()

    def _boot(self) -> None:
        st = ota_boot(self.ota_root)  # the trial count or the rollback, as boot.py does
        self.updater = Updater(self.ota_root, self.factory_fw, keys=self.trust_keys,
                               clock=self.clock, deadline_s=self.ota_deadline_s, boot_state=st)
        self.journal = Journal(str(self.journal_dir), max_records=self.max_records)
        # every virtual box has the optional SOS button (firmware/sos.py): hold_sos() presses it
        self.sos = SosButton(self.device_id, self.clock, os.urandom, store=self.journal)
        self.core = ReaderCore(self.device_id, self.journal, Planning.from_config(self.config),
                               self.clock, ack_timeout=self.ack_timeout, fw=self.updater.fw,
                               updater=self.updater, sos=self.sos)
        self.started_at = time.monotonic()

    @property
    def fw(self) -> str:
        return self.core.fw

    def reboot(self) -> None:
        """A reset: drop the link, boot again from flash (journal, update slots), reconnect."""
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()
        with self._lock:
            self._boot()
        self.reboots += 1
        self.client = self._make_client()
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    @property
    def host(self) -> str:
        """The broker address in use (or tried next)."""
        return self.addresses.now[0]

    @host.setter
    def host(self, value: str) -> None:  # before start(): the address tried first
        a = self.addresses
        a.addresses[a.current] = (value, a.now[1])

    @property
    def port(self) -> int:
        return self.addresses.now[1]

    @port.setter
    def port(self, value: int) -> None:
        a = self.addresses
        a.addresses[a.current] = (a.now[0], value)

    @property
    def moves(self) -> int:
        """How many times it moved to another broker address."""
        return self.addresses.moves

    # -- network -----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.device_id,
                        protocol=mqtt.MQTTv311, clean_session=True)
        if self.username:
            c.username_pw_set(self.username, self.password)
        c.will_set(self._topic("state"), b"offline", qos=1, retain=True)
        if self.tls is not None:
            self.tls.sslsocket_class = self._watched_socket()
            c.tls_set_context(self.tls)
        c.reconnect_delay_set(min_delay=1, max_delay=5)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = lambda client, _u: self.addresses.next(client)
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        return c

    def _watched_socket(self) -> type:
        """The TLS socket class of this reader: a failed handshake is said, not swallowed by
        paho's reconnect loop (SSLContext.sslsocket_class is the standard seam)."""
        reader = self

        class Watched(ssl.SSLSocket):
            def do_handshake(self, *args):
                try:
                    return super().do_handshake(*args)
                except OSError as e:
                    reader._link_failed(e)
                    raise

        return Watched

    def _link_failed(self, e: OSError) -> None:
        why = f"{type(e).__name__}: {getattr(e, 'reason', None) or e}"
        if isinstance(e, ssl.SSLCertVerificationError):
            why = (f"the broker's certificate is not for {self.host} ({e.verify_message})"
                   if e.verify_code in (62, 64) else  # X509_V_ERR_HOSTNAME/IP_ADDRESS_MISMATCH
                   f"the broker's certificate is not signed by the CA this reader was "
                   f"provisioned with ({e.verify_message})")
        if why != self.link_error:
            log.warning("%s: TLS to the broker %s:%s failed: %s; retrying, the journal keeps "
                        "its %d event(s)", self.device_id, self.host, self.port, why,
                        self.depth)
        self.link_error = why

    def _topic(self, suffix: str) -> str:
        return f"tg/v1/{self.device_id}/{suffix}"

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.warning("%s: broker %s:%s refused the connection: %s", self.device_id,
                        self.host, self.port, reason_code)
            self.refused.append(str(reason_code))
            return
        self._resubscribe_at = 0.0
        self._subscribe(client, [self._topic("down/+"), self._topic("down/config/+"),
                                 SIM_TAP_TOPIC.format(device=self.device_id)])
        client.publish(self._topic("state"), b"online", qos=1, retain=True)
        self.link_error = ""
        with self._lock:
            self.core.on_connect()
        self.connected.set()

    def _subscribe(self, client: mqtt.Client, filters: list[str]) -> None:
        _rc, mid = client.subscribe([(f, 1) for f in filters])
        self._asked[mid] = filters

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        """A refused down filter (SUBACK 0x80) is asked again a second later: NATS 2.9.10
        refuses a QoS 1 subscription while its JetStream is electing leaders after a node
        loss, and a box that let it be would never hear its acks again. The simulator's
        control topic, refused by a broker that does not grant it (fleet/natsauth.py), is
        said once and left."""
        filters = self._asked.pop(mid, [])
        refused = [f for f, rc in zip(filters, reason_codes) if rc.is_failure]
        down = [f for f in refused if f.startswith("tg/")]
        if down:
            self.sub_refused += 1
            log.warning("%s: broker %s:%s refused %s; again in 1 s", self.device_id,
                        self.host, self.port, ", ".join(down))
            self._retry_filters, self._resubscribe_at = down, time.monotonic() + 1.0
        if len(refused) > len(down) and not self._said_control:
            self._said_control = True
            log.info("%s: no control topic on this broker (%s): taps come from tap() only",
                     self.device_id, ", ".join(f for f in refused if f not in down))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected.clear()
        if self._running:
            self.addresses.next(client)
        with self._lock:
            self.core.commands.on_disconnect()

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith("sim/"):
            uid = msg.payload.decode("ascii", "replace").strip()
            log.info("%s: tap %s -> %s", self.device_id, uid, self.tap(uid))
            return
        with self._lock:
            self.core.on_message(msg.topic, msg.payload)

    def _pump_loop(self) -> None:
        last_health = 0.0
        while self._running:
            if self.connected.is_set():
                if self._resubscribe_at and time.monotonic() >= self._resubscribe_at:
                    self._resubscribe_at = 0.0
                    self._subscribe(self.client, self._retry_filters)
                self.pump()
                # a trial boot is judged on its health reports: send them every second
                if "try" in self.updater.state and time.monotonic() - last_health >= 1:
                    self.send_health()
                    last_health = time.monotonic()
            if self.core.commands.reboot or (
                    "try" in self.updater.state and not self.connected.is_set()
                    and time.monotonic() - self.started_at >= self.ota_deadline_s):
                time.sleep(0.2)  # the box resets half a second after asking: reports go out
                self.pump()
                self.reboot()
            time.sleep(self.pump_interval)

    def pump(self) -> int:
        """Publish what the core wants sent now; returns the number of messages."""
        with self._lock:
            out = self.core.outgoing(self.clock.time())
        for topic, payload, qos in out:
            self.client.publish(topic, payload, qos=qos)
        return len(out)

    def send_health(self) -> None:
        up = int(time.monotonic() - self.started_at)
        with self._lock:
            topic, payload, qos = self.core.health(self.clock.time(), up, 80_000, rssi=-60,
                                                   rd=self.reader_status)
        self.client.publish(topic, payload, qos=qos)

    # -- hardware ----------------------------------------------------------------------------
    def tap(self, uid: str, method: str = "nfc") -> str:
        """A card on the reader: the firmware decides and journals, the LED shows the result."""
        with self._lock:
            kind = self.core.tap(uid.upper(), method)
        self.feedback.show(kind)
        return kind

    def hold_sos(self, seconds: float = 3.0) -> bool:
        """The SOS button held down `seconds` then released; True when that raised an SOS (the
        firmware's 3 s long press). Sent at the next pump, before any clock batch."""
        with self._lock:
            held = int(seconds * 1000)
            self.sos.press(False, 0)  # released before: a button is heeded once seen released
            self.sos.press(True, 1)
            raised = self.sos.press(True, 1 + held)
            self.sos.press(False, 2 + held)
        return raised

    @property
    def depth(self) -> int:
        with self._lock:
            return self.journal.depth

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self.journal.last_seq

    # -- life --------------------------------------------------------------------------------
    def start(self) -> "VirtualReader":
        self._running = True
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        self._pump = threading.Thread(target=self._pump_loop, name=f"pump-{self.device_id}",
                                      daemon=True)
        self._pump.start()
        return self

    def stop(self) -> None:
        self._running = False
        if self._pump:
            self._pump.join(2)
        if self.connected.is_set():
            self.client.publish(self._topic("state"), b"offline", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    def wait_drained(self, timeout: float = 30.0) -> bool:
        """Wait until the fleet has acked everything in the journal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.depth == 0:
                return True
            time.sleep(0.05)
        return self.depth == 0
