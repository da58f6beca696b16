"""The NATS cluster enforces device identities: one user per device login in an authorization
file every nats-server includes, rewritten by the fleet and put in force by a reload.

This is `fleet.brokerauth.BrokerControl` for the clustered broker (tools/cluster.py,
docs/operations.md), as `DynsecControl` is for Mosquitto. What differs, and why:

- **The store is two files.** `<auth file>.json` (the broker's own store: each login's bcrypt
  hash, its device, enabled or not; like Mosquitto's dynamic-security.json) and the
  `authorization { users: [...] }` block rendered from it, which nats-server reads. Both are
  written 0600 to a temporary file and renamed over the old one, so a node that reloads reads
  a whole file, old or new. A lock file serialises the API's and the CLI's changes.
- **A change is in force after a reload.** Each change rewrites the file and sends SIGHUP to
  every node (their pid files), then waits until each node's monitoring endpoint shows a new
  `config_load_time` (when monitor URLs are given). nats-server then re-checks every connected
  client against the new users: a deleted or disabled login is disconnected and cannot log in
  again. `batch()` makes many changes cost one reload (provisioning a whole fleet).
- **bcrypt, cost 4.** nats-server compares a login's password with bcrypt on every connect *and
  again for every connected client at every reload*. Measured on this 2-core machine: about
  1.2 ms of server CPU per login at cost 4, 15 ms at 8, 60 ms at 10 (docs/security.md). The
  passwords are 256-bit random (`new_password`), so a higher cost buys nothing against
  guessing; the hash only keeps a copied file from being a list of logins. Cost 4 lets 50,000
  devices log in again in about a minute of CPU; TELEGEST_NATS_BCRYPT_COST raises it.
- **A device's login never leaves the file.** NATS has no disabled flag: a blocked, staged,
  replaced or retired login stays, with its permissions, under the hash of a random password
  nobody knows ("locked"). Leaving it out would be simpler, but at a reload nats-server drops
  the retained messages whose publisher may no longer publish them, and 2.9.10 panics there
  (`mqttCheckPubRetainedPerms`, a nil pointer in `Sublist.remove`) when the publisher's user
  is gone: every box's retained `state` made blocking one crash a node
  (tests/cluster/test_natsauth.py blocks boxes that published one).
- **No client-id pinning.** A device could connect under another's MQTT client id (it would
  take over that session, though it gains none of its permissions). Devices may use MQTT
  only (`allowed_connection_types`), never plain NATS.

Permissions (NATS subjects; MQTT topic `tg/v1/X/up/clock` is subject `tg.v1.X.up.clock`):
- device `<ident>` (logins `<ident>` and `<ident>.2`): publish `tg.v1.<ident>.up.>` and
  `tg.v1.<ident>.state`; subscribe `tg.v1.<ident>.down` and `tg.v1.<ident>.down.>` (an MQTT
  filter `.../down/#` is both) and `$MQTT.sub.>`, where nats-server delivers a QoS 1
  subscription's messages from its JetStream consumer (a random subject per subscription;
  without it every QoS 1 subscription is refused). A device cannot subscribe to `$MQTT/sub/#`
  through MQTT: nats-server refuses topics of its own `$MQTT` namespace
  (tests/cluster/test_natsauth.py checks both).
- `fleet-worker`: the devices' subjects both ways, JetStream's API and acks, inboxes, MQTT
  delivery subjects (it may keep an MQTT connection for retained configs).
- `fleet-admin`: everything (the operator's `nats` command, stream management).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fleet.brokerauth import BrokerAuthError, new_password, slots
from fleet.private_files import write_private

log = logging.getLogger("telegest.natsauth")

ADMIN, WORKER = "fleet-admin", "fleet-worker"
BCRYPT_COST = 4  # see the module's docstring and docs/security.md for the measurements
_IDENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a NATS subject token and an MQTT topic level


def device_permissions(ident: str, simulator: bool = False) -> dict:
    """`simulator` (development clusters only, `telegest cluster up`): the virtual reader also
    hears its `sim/v1/<ident>/tap` (tools/up_broker.py's simulator role on Mosquitto)."""
    base = f"tg.v1.{ident}"
    sub = [f"{base}.down", f"{base}.down.>", "$MQTT.sub.>"]
    return {"publish": {"allow": [f"{base}.up.>", f"{base}.state"]},
            "subscribe": {"allow": sub + ([f"sim.v1.{ident}.tap"] if simulator else [])}}


def sim_control_permissions() -> dict:
    """`telegest device tap` on a development cluster: publish (and hear) the taps."""
    return {"publish": {"allow": ["sim.v1.*.tap"]},
            "subscribe": {"allow": ["sim.v1.*.tap", "$MQTT.sub.>"]}}


def worker_permissions() -> dict:
    return {"publish": {"allow": ["tg.v1.*.down", "tg.v1.*.down.>", "$JS.API.>", "$JS.ACK.>",
                                  "$JS.FC.>", "_INBOX.>"]},
            "subscribe": {"allow": ["tg.v1.>", "_INBOX.>", "$MQTT.sub.>"]}}


def check_ident(ident: str) -> str:
    if not _IDENT.match(ident or ""):
        raise BrokerAuthError(f"device ident {ident!r} cannot be a NATS subject token: letters, "
                              "digits, '-' and '_' only, at most 64")
    return ident


def bcrypt_hash(password: str, cost: int = BCRYPT_COST) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


def _block(value) -> str:
    """A NATS configuration value (JSON is a subset the parser reads) on one line."""
    return json.dumps(value, separators=(", ", ": "))


def render(users: dict[str, dict], simulator: bool = False) -> str:
    """The authorization file for `users` (the store's content): the enabled service logins,
    every device login (locked when not enabled)."""
    lines = ["# written by telegest (fleet/natsauth.py): rewritten at every change, do not edit",
             "authorization {", "  timeout: 10", "  users: ["]
    for name, u in sorted(users.items()):
        if u.get("ident"):  # a device's login: in the file for good, locked when not enabled
            entry = {"user": name, "password": u["hash"] if u.get("enabled") else u["lock"]}
        elif not u.get("enabled", True):
            continue
        else:
            entry = {"user": name, "password": u["hash"]}
        if u.get("ident"):
            entry["permissions"] = device_permissions(u["ident"], simulator)
            entry["allowed_connection_types"] = ["MQTT"]
        elif u.get("role") == "worker":
            entry["permissions"] = worker_permissions()
        elif u.get("role") == "sim-control" and simulator:
            entry["permissions"] = sim_control_permissions()
            entry["allowed_connection_types"] = ["MQTT"]
        elif u.get("role") != "admin":
            continue  # neither a device nor a service login: never let in
        lines.append("    " + _block(entry))
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_private(tmp, text)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class NatsAuthSettings:
    auth_file: Path
    pid_files: tuple[Path, ...] = ()
    monitor_urls: tuple[str, ...] = ()
    cost: int = BCRYPT_COST
    reload_timeout: float = 30.0

    @classmethod
    def from_env(cls) -> "NatsAuthSettings | None":
        """TELEGEST_NATS_AUTH_FILE (the include file), TELEGEST_NATS_PID_FILES and
        TELEGEST_NATS_MONITOR_URLS (comma separated, one per node); None when unset."""
        path = os.environ.get("TELEGEST_NATS_AUTH_FILE")
        if not path:
            return None
        split = lambda name: tuple(x.strip() for x in os.environ.get(name, "").split(",")
                                   if x.strip())
        cost = os.environ.get("TELEGEST_NATS_BCRYPT_COST", str(BCRYPT_COST))
        if not cost.isdigit() or not 4 <= int(cost) <= 16:
            raise BrokerAuthError(f"TELEGEST_NATS_BCRYPT_COST={cost!r}: a whole number from 4 "
                                  "to 16 (docs/security.md)")
        return cls(Path(path), tuple(Path(p) for p in split("TELEGEST_NATS_PID_FILES")),
                   split("TELEGEST_NATS_MONITOR_URLS"), int(cost))


class NatsAuth:
    """The fleet's side of the NATS cluster's users; see the module's docstring."""

    enforced = True

    def __init__(self, settings: NatsAuthSettings) -> None:
        self.settings = settings
        self.path = Path(settings.auth_file)
        self.store = self.path.with_name(self.path.name + ".json")
        self._batch_depth = 0
        self._dirty = False

    # -- the files ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict:
        try:
            data = json.loads(self.store.read_text())
            data["users"]
            return data
        except FileNotFoundError:
            return {"users": {}}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BrokerAuthError(f"cannot read the NATS users store {self.store}: {e}") from None

    def users(self) -> dict[str, dict]:
        return self._read()["users"]

    @property
    def simulator(self) -> bool:
        return bool(self._read().get("simulator"))

    def _save(self, users: dict[str, dict], simulator: bool | None = None) -> None:
        simulator = self.simulator if simulator is None else simulator
        _atomic_write(self.store, json.dumps({"users": users, "simulator": simulator},
                                             indent=1, sort_keys=True) + "\n")
        _atomic_write(self.path, render(users, simulator))

    def _change(self, edit) -> None:
        """Apply `edit(users)` to the store, rewrite the files, reload (unless batched)."""
        with self._locked():
            users = self.users()
            edit(users)
            self._save(users)
        if self._batch_depth:
            self._dirty = True
        else:
            self.reload()

    @contextlib.contextmanager
    def batch(self):
        """Many changes, one reload at the end (a reload re-checks every connected client)."""
        self._batch_depth += 1
        try:
            yield self
        finally:
            self._batch_depth -= 1
            if not self._batch_depth and self._dirty:
                self._dirty = False
                self.reload()

    def init(self, admin: tuple[str, str], worker: tuple[str, str],
             sim_control: tuple[str, str] | None = None) -> None:
        """Set the fleet's service logins (the devices' stay), write the files; no reload
        (the cluster is started after this, or `reload()`). `sim_control` (development
        only): that login may publish `sim/v1/+/tap` and every device hears its own."""
        with self._locked():
            users = {n: u for n, u in self.users().items() if u.get("ident")}
            services = [(admin, "admin"), (worker, "worker")]
            services += [(sim_control, "sim-control")] if sim_control else []
            for (name, password), role in services:
                if users.get(name, {}).get("ident"):
                    raise BrokerAuthError(f"{name!r} is a device's login, not a service's")
                users[name] = {"role": role, "hash": bcrypt_hash(password, self.settings.cost),
                               "enabled": True}
            self._save(users, simulator=sim_control is not None)

    # -- reload ------------------------------------------------------------------------------
    def _load_times(self) -> list[str | None]:
        out = []
        for url in self.settings.monitor_urls:
            try:
                with urllib.request.urlopen(url.rstrip("/") + "/varz", timeout=2) as r:
                    out.append(json.loads(r.read()).get("config_load_time"))
            except (OSError, ValueError):
                out.append(None)  # a node that is down loads the file when it starts
        return out

    def reload(self) -> None:
        """SIGHUP every node with a pid file, then wait until each reachable node has loaded
        the file again. A node that is down reads it when it starts."""
        before = self._load_times()
        signalled = 0
        for pid_file in self.settings.pid_files:
            try:
                pid = int(Path(pid_file).read_text().strip())
                os.kill(pid, signal.SIGHUP)
                signalled += 1
            except (OSError, ValueError) as e:
                log.warning("NATS node of %s not reloaded: %s (down? it reads the users when "
                            "it starts)", pid_file, e)
        if self.settings.pid_files and not signalled:
            raise BrokerAuthError("no NATS node could be told to reload the users (pid files "
                                  f"{', '.join(map(str, self.settings.pid_files))}): is the "
                                  "cluster running?")
        deadline = time.monotonic() + self.settings.reload_timeout
        while True:
            now = self._load_times()
            late = [url for url, b, n in zip(self.settings.monitor_urls, before, now)
                    if b is not None and n == b]
            if not late:
                return
            if time.monotonic() > deadline:
                raise BrokerAuthError(f"NATS nodes {', '.join(late)} did not reload the users "
                                      f"within {self.settings.reload_timeout:g} s (see their "
                                      "logs: a refused file keeps the old users)")
            time.sleep(0.05)

    # -- BrokerControl -----------------------------------------------------------------------
    def _device_login(self, ident: str, password: str, enabled: bool) -> dict:
        login = {"ident": check_ident(ident), "enabled": enabled,
                 "hash": bcrypt_hash(password, self.settings.cost)}
        return login if enabled else {**login, "lock": self._lock()}

    def _lock(self) -> str:
        """The hash of a password nobody knows: what a locked login gets in the file."""
        return bcrypt_hash(new_password(), self.settings.cost)

    def _retire(self, users: dict, name: str) -> None:
        """A device login gone: locked, never left out (see the module's docstring)."""
        u = users.get(name)
        if u is not None and u.get("ident"):
            u.update(hash=None, enabled=False)
            u.setdefault("lock", self._lock())

    def provision(self, ident: str, password: str) -> None:
        """At once, in slot `<ident>`; the other slot is deleted (its connection dropped)."""
        login = self._device_login(ident, password, True)

        def edit(users):
            first, second = slots(ident)
            self._retire(users, second)
            users[first] = login
        self._change(edit)

    def stage(self, ident: str, username: str, password: str) -> None:
        if username not in slots(check_ident(ident)):
            raise BrokerAuthError(f"{username!r} is not a login slot of device {ident!r}")
        login = self._device_login(ident, password, False)
        self._change(lambda users: users.__setitem__(username, login))

    def confirm(self, new: str, old: str | None) -> None:
        def edit(users):
            if new not in users:
                raise BrokerAuthError(f"no staged NATS login {new!r} to confirm")
            if not users[new].get("hash"):
                raise BrokerAuthError(f"the NATS login {new!r} was abandoned, not staged")
            users[new]["enabled"] = True
            if old and old != new:
                self._retire(users, old)
        self._change(edit)

    def abandon(self, username: str) -> None:
        self._change(lambda users: self._retire(users, username))

    def disable(self, username: str) -> None:
        def edit(users):
            if username in users and not users[username].get("ident"):
                raise BrokerAuthError(f"{username!r} is a fleet service login, not a device's")
            if username in users:
                users[username]["enabled"] = False
                users[username].setdefault("lock", self._lock())
        self._change(edit)

    def delete(self, ident: str) -> None:
        def edit(users):
            for name in slots(check_ident(ident)):
                self._retire(users, name)
        self._change(edit)
