"""The broker enforces device identities: Mosquitto's dynamic security plugin, driven from here.

Two halves. Pure builders (`initial_config`, `device_commands`, `disable_command`...) return
the exact JSON the plugin reads, so tests check them byte for byte. `DynsecControl` owns one
paho client logged in as the fleet's dynsec admin and sends those commands on
`$CONTROL/dynamic-security/v1`, waiting for each answer on `.../response`.

Roles (see docs/operations.md):
- `fleet-worker`: subscribe `$share/fleet/tg/v1/+/up/#` (and the plain filter for a single
  worker), receive them, publish `tg/v1/+/down/#`, read `tg/v1/+/state`.
- `device:<ident>`, one per device: publish `tg/v1/<ident>/up/#` and `tg/v1/<ident>/state`,
  subscribe `tg/v1/<ident>/down/#` only. The client is also pinned to client id `<ident>`, so a
  device can neither write another's topics nor take over another's session.

A device has two login slots, usernames `<ident>` and `<ident>.2` (`.` is never in an ident).
Provisioning in two phases (fleet.lifecycle.stage / confirm) creates the new password in the
slot not in use, *disabled*, while the active slot keeps working; confirming enables it and
deletes the old one. The broker learns the password at staging (the fleet keeps only hashes, so
it could not give it at confirm), and a disabled client cannot log in, so staged credentials
are useless until the box has proved it stored them.
"""
from __future__ import annotations

import base64
import glob
import hashlib
import json
import logging
import os
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("telegest.brokerauth")

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
ADMIN_ROLE = "fleet-admin"
WORKER_ROLE = "fleet-worker"


def _find_plugin() -> str:
    """Mosquitto's dynamic security plugin: TELEGEST_DYNSEC_PLUGIN, or where Debian (any
    architecture), Alpine or a source build put it; the Debian x86_64 path when none is there
    (the error then names it)."""
    if os.environ.get("TELEGEST_DYNSEC_PLUGIN"):
        return os.environ["TELEGEST_DYNSEC_PLUGIN"]
    name = "mosquitto_dynamic_security.so"
    for path in (*sorted(glob.glob(f"/usr/lib/*-linux-*/{name}")), f"/usr/lib/{name}",
                 f"/usr/local/lib/{name}", f"/usr/lib/mosquitto/{name}"):
        if os.path.exists(path):
            return path
    return f"/usr/lib/x86_64-linux-gnu/{name}"


DYNSEC_PLUGIN = _find_plugin()
_ITERATIONS = 101  # what mosquitto_ctrl uses; the passwords are 256-bit random anyway
# errors of a delete that finds nothing: re-provisioning a device the broker never saw is fine
_ABSENT = ("Client not found", "Role not found")


class BrokerAuthError(RuntimeError):
    """The broker refused a command or did not answer; the message says which and why."""


def new_password() -> str:
    return secrets.token_urlsafe(32)


def role_name(ident: str) -> str:
    return f"device:{ident}"


def slots(ident: str) -> tuple[str, str]:
    """The two usernames a device may log in with (see the module's docstring)."""
    return ident, f"{ident}.2"


def other_slot(ident: str, username: str | None) -> str:
    """The slot to stage new credentials in: the one `username` (the active one) is not."""
    first, second = slots(ident)
    return second if username in (None, first) else first


def dynsec_password(password: str, salt: bytes | None = None,
                    iterations: int = _ITERATIONS) -> dict:
    """The plugin's stored form: PBKDF2-SHA512, 64 bytes, base64 (as mosquitto_ctrl writes)."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return {"password": base64.b64encode(digest).decode(),
            "salt": base64.b64encode(salt).decode(), "iterations": iterations}


def _acl(acltype: str, topic: str, allow: bool = True) -> dict:
    return {"acltype": acltype, "topic": topic, "allow": allow}


def device_acls(ident: str) -> list[dict]:
    base = f"tg/v1/{ident}"
    return [_acl("publishClientSend", f"{base}/up/#"),
            _acl("publishClientSend", f"{base}/state"),
            _acl("subscribePattern", f"{base}/down/#"),
            _acl("publishClientReceive", f"{base}/down/#")]


def worker_acls() -> list[dict]:
    return [_acl("subscribePattern", "$share/fleet/tg/v1/+/up/#"),
            _acl("subscribePattern", "tg/v1/+/up/#"),
            _acl("subscribePattern", "tg/v1/+/state"),
            _acl("publishClientReceive", "tg/v1/+/up/#"),
            _acl("publishClientReceive", "tg/v1/+/state"),
            _acl("publishClientSend", "tg/v1/+/down/#"),
            _acl("unsubscribePattern", "#")]


def admin_acls() -> list[dict]:
    return [_acl("publishClientSend", "$CONTROL/dynamic-security/#"),
            _acl("publishClientReceive", "$CONTROL/dynamic-security/#"),
            _acl("subscribePattern", "$CONTROL/dynamic-security/#"),
            _acl("unsubscribePattern", "#")]


def _client(username: str, password: str, role: str, text: str, salt: bytes | None) -> dict:
    return {"username": username, "textName": text, **dynsec_password(password, salt),
            "roles": [{"rolename": role}]}


def initial_config(admin: tuple[str, str], worker: tuple[str, str] | None = None, *,
                   salt: bytes | None = None) -> dict:
    """The dynamic-security.json a new broker starts with: the fleet's admin client (dynsec
    control only), the worker's client, their roles, and deny-by-default for everything else
    (a device can do nothing until the fleet provisions it)."""
    clients = [_client(admin[0], admin[1], ADMIN_ROLE, "telegest fleet: dynsec admin", salt)]
    if worker:
        clients.append(_client(worker[0], worker[1], WORKER_ROLE,
                               "telegest fleet: ingest workers", salt))
    return {
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                             "subscribe": False, "unsubscribe": True},
        "clients": clients,
        "groups": [],
        "roles": [{"rolename": ADMIN_ROLE, "acls": admin_acls()},
                  {"rolename": WORKER_ROLE, "acls": worker_acls()}],
    }


# -- commands (each a dict of the `commands` list) -------------------------------------------------
def device_commands(ident: str, password: str) -> list[dict]:
    """Give `ident` a fresh identity: whatever it had is deleted first (its live connection is
    kicked and its old password is gone), then its role and client are created anew."""
    role = role_name(ident)
    return [{"command": "deleteClient", "username": ident},
            {"command": "deleteRole", "rolename": role},
            {"command": "createRole", "rolename": role, "acls": device_acls(ident)},
            {"command": "createClient", "username": ident, "password": password,
             "clientid": ident, "textname": f"telegest device {ident}",
             "roles": [{"rolename": role, "priority": 1}]}]


def stage_commands(ident: str, username: str, password: str) -> list[dict]:
    """New credentials in slot `username`, created disabled in the same message (mosquitto
    runs one control message at a time, so nobody logs in between); the role is created if
    the device never had one ("Role already exists" is tolerated)."""
    role = role_name(ident)
    return [{"command": "deleteClient", "username": username},
            {"command": "createRole", "rolename": role, "acls": device_acls(ident)},
            {"command": "createClient", "username": username, "password": password,
             "clientid": ident, "textname": f"telegest device {ident} (staged)",
             "roles": [{"rolename": role, "priority": 1}]},
            disable_command(username)]


def confirm_commands(new: str, old: str | None) -> list[dict]:
    """The staged slot becomes the login; the old one, if any, is deleted (its live
    connection is kicked, the box reconnects with what it just stored)."""
    return [enable_command(new)] + ([{"command": "deleteClient", "username": old}]
                                    if old and old != new else [])


def disable_command(ident: str) -> dict:
    return {"command": "disableClient", "username": ident}


def enable_command(ident: str) -> dict:
    return {"command": "enableClient", "username": ident}


def delete_commands(ident: str) -> list[dict]:
    return [{"command": "deleteClient", "username": ident},
            {"command": "deleteRole", "rolename": role_name(ident)}]


def _other_slot_gone(ident: str) -> list[dict]:
    return [{"command": "deleteClient", "username": slots(ident)[1]}]


def payload(commands: list[dict]) -> bytes:
    return json.dumps({"commands": commands}, separators=(",", ":")).encode()


# -- what lifecycle code talks to ------------------------------------------------------------------
class BrokerControl(Protocol):
    enforced: bool

    def provision(self, ident: str, password: str) -> None: ...
    def stage(self, ident: str, username: str, password: str) -> None: ...
    def confirm(self, new: str, old: str | None) -> None: ...
    def abandon(self, username: str) -> None: ...
    def disable(self, username: str) -> None: ...
    def delete(self, ident: str) -> None: ...


class NoBrokerAuth:
    """An anonymous broker (the embedded amqtt one, a development mosquitto): nothing to
    enforce. Credentials are still created and hashed so a device can be moved to a real
    broker, but the broker does not check them."""

    enforced = False

    def provision(self, ident: str, password: str) -> None:
        pass

    def stage(self, ident: str, username: str, password: str) -> None:
        pass

    def confirm(self, new: str, old: str | None) -> None:
        pass

    def abandon(self, username: str) -> None:
        pass

    def disable(self, username: str) -> None:
        pass

    def delete(self, ident: str) -> None:
        pass


@dataclass(frozen=True)
class DynsecSettings:
    host: str
    port: int
    username: str
    password: str
    tls: bool = False

    @classmethod
    def from_env(cls) -> "DynsecSettings | None":
        """TELEGEST_DYNSEC_USERNAME / TELEGEST_DYNSEC_PASSWORD (and the MQTT host and port);
        None when the fleet runs against an anonymous broker."""
        user = os.environ.get("TELEGEST_DYNSEC_USERNAME")
        if not user:
            return None
        pw = os.environ.get("TELEGEST_DYNSEC_PASSWORD")
        if not pw or len(pw) < 12:
            raise BrokerAuthError("TELEGEST_DYNSEC_PASSWORD is missing or shorter than 12 "
                                  "characters")
        return cls(os.environ.get("TELEGEST_MQTT_HOST", "127.0.0.1"),
                   int(os.environ.get("TELEGEST_MQTT_PORT", "1883")), user, pw,
                   os.environ.get("TELEGEST_MQTT_TLS", "0").lower() in ("1", "true", "yes"))


class DynsecControl:
    """The fleet's dynsec admin connection. Thread-safe; connects on first use."""

    enforced = True

    def __init__(self, settings: DynsecSettings, timeout: float = 5.0) -> None:
        self.settings, self.timeout = settings, timeout
        self._lock = threading.Lock()
        self._client = None
        self._ready = threading.Event()
        self._waiting: dict[str, tuple[threading.Event, list]] = {}

    # -- connection ------------------------------------------------------------------------------
    def _connect(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"fleet-dynsec-{uuid.uuid4().hex[:8]}",
                             protocol=mqtt.MQTTv5)
        client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set()
        refused: list = []

        def on_connect(c, _u, _f, rc, _p):
            if rc.is_failure:
                refused.append(str(rc))
                self._ready.set()
                return
            c.subscribe(RESPONSE_TOPIC, qos=1)

        def on_subscribe(_c, _u, _mid, codes, _p):
            if any(code.is_failure for code in codes):
                refused.append("subscription to the dynsec response topic refused")
            self._ready.set()

        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = lambda *_a: self._ready.clear()
        client.connect_async(s.host, s.port, keepalive=30)
        client.loop_start()
        if not self._ready.wait(self.timeout) or refused:
            client.loop_stop()
            why = refused[0] if refused else "no answer"
            raise BrokerAuthError(f"cannot log in to the broker at {s.host}:{s.port} as the "
                                  f"dynsec admin {s.username!r}: {why}")
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _on_message(self, _c, _u, msg) -> None:
        try:
            responses = json.loads(msg.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable dynsec response: %r", msg.payload[:200])
            return
        for r in responses:
            waiter = self._waiting.get(r.get("correlationData", ""))
            if waiter is not None:
                waiter[1].append(r)
                waiter[0].set()

    # -- commands --------------------------------------------------------------------------------
    def send(self, commands: list[dict], tolerate: tuple[str, ...] = ()) -> list[dict]:
        """Send `commands` in one message and wait for every answer. An answer with an
        `error` raises BrokerAuthError unless the error is one of `tolerate`."""
        with self._lock:
            if self._client is None or not self._ready.is_set():
                self.close()
                self._connect()
            tagged, waits = [], []
            for cmd in commands:
                corr = uuid.uuid4().hex
                event: threading.Event = threading.Event()
                box: list = []
                self._waiting[corr] = (event, box)
                tagged.append({**cmd, "correlationData": corr})
                waits.append((corr, event, box, cmd["command"]))
            try:
                self._client.publish(CONTROL_TOPIC, payload(tagged), qos=1)
                answers = []
                for corr, event, box, name in waits:
                    if not event.wait(self.timeout):
                        raise BrokerAuthError(f"the broker did not answer {name} within "
                                              f"{self.timeout}s")
                    answer = box[0]
                    err = answer.get("error")
                    if err and err not in tolerate:
                        raise BrokerAuthError(f"the broker refused {name}: {err}")
                    answers.append(answer)
                return answers
            finally:
                for corr, *_ in waits:
                    self._waiting.pop(corr, None)

    def provision(self, ident: str, password: str) -> None:
        """At once, in slot `<ident>`: any other login of the device is deleted."""
        self.send(_other_slot_gone(ident) + device_commands(ident, password), tolerate=_ABSENT)

    def stage(self, ident: str, username: str, password: str) -> None:
        self.send(stage_commands(ident, username, password),
                  tolerate=_ABSENT + ("Role already exists",))

    def confirm(self, new: str, old: str | None) -> None:
        self.send(confirm_commands(new, old), tolerate=_ABSENT)

    def abandon(self, username: str) -> None:
        self.send([{"command": "deleteClient", "username": username}], tolerate=_ABSENT)

    def disable(self, username: str) -> None:
        self.send([disable_command(username)])

    def delete(self, ident: str) -> None:
        self.send(_other_slot_gone(ident) + delete_commands(ident), tolerate=_ABSENT)


def control_from_env() -> BrokerControl:
    """The NATS cluster's users (TELEGEST_NATS_AUTH_FILE, fleet.natsauth), else Mosquitto's
    dynamic security (TELEGEST_DYNSEC_USERNAME), else an anonymous broker."""
    from fleet.natsauth import NatsAuth, NatsAuthSettings

    nats = NatsAuthSettings.from_env()
    if nats is not None:
        return NatsAuth(nats)
    settings = DynsecSettings.from_env()
    return DynsecControl(settings) if settings else NoBrokerAuth()
