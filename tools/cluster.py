"""A NATS cluster on this machine: N `nats-server` processes joined by routes, with JetStream
and an MQTT listener each, for `telegest cluster up`, the tests and the benchmarks.

Every node has its own folder (<workdir>/node<i>: nats.conf, its JetStream store, its log),
its own loopback ports (client, route, MQTT, HTTP monitoring) and a server name (`tg-<i>`).
The devices speak MQTT 3.1.1 to any node's MQTT listener; NATS keeps their sessions and
retained messages in JetStream streams replicated to `min(3, nodes)` nodes
(`mqtt { stream_replicas }`), so a node's loss loses neither. The fleet's workers use NATS
itself (`.nats_urls`).

With `auth_file`, every node includes that file (the `authorization { users [...] }` block
written by fleet.natsauth); `.reload()` makes every running node read it again (SIGHUP) and
waits until each one has (its /varz `config_load_time` moves), so a block is in force when
it returns.

`.kill(i)` is the abrupt outage (SIGKILL); `.restart(i)` starts node i again on the same ports
and store; `.start()` and `.restart(i)` return once every node started sees a JetStream meta
leader and accepts an MQTT CONNECT (`probe_login` when the nodes enforce logins). Each node
writes its pid to `<folder>/nats.pid` and serves its monitoring on `.monitor_urls`: what
fleet.natsauth, in another process (the API), needs to reload the users.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tools.broker import BrokerError, free_port, port_free, stop_process, wait_port


class ClusterError(BrokerError):
    """The cluster could not be started, reloaded or reached; the message says why."""


def _mqtt_string(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def mqtt_probe(host: str, port: int, login: tuple[str, str] | None = None,
               client_id: str = "tg-probe", timeout: float = 10.0) -> int:
    """One MQTT 3.1.1 CONNECT (clean session) and DISCONNECT; the CONNACK's return code
    (0 accepted, 4 bad login, 5 not authorized). Raises OSError when no CONNACK comes."""
    import socket

    flags, tail = 0x02, _mqtt_string(client_id.encode())
    if login:
        flags |= 0xC0
        tail += _mqtt_string(login[0].encode()) + _mqtt_string(login[1].encode())
    body = _mqtt_string(b"MQTT") + bytes([4, flags]) + (30).to_bytes(2, "big") + tail
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(bytes([0x10, len(body)]) + body)  # under 128 bytes: one length byte
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            if not chunk:
                raise OSError(f"{host}:{port} closed the connection without a CONNACK")
            ack += chunk
        if ack[0] != 0x20:
            raise OSError(f"{host}:{port} answered {ack!r}, not a CONNACK")
        if ack[3] == 0:
            s.sendall(b"\xe0\x00")
        return ack[3]


def nats_server_path() -> str | None:
    return shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/local/bin/nats-server") if os.path.exists(p)),
        None)


# One node's configuration. MQTT needs a server name and JetStream; `stream_replicas` is the
# replica count of the MQTT session and retained-message streams (nats-server 2.9 takes it,
# checked by tests/cluster/test_cluster.py). `max_payload` 64 KiB: every message of the device
# protocol is under 1 KiB (docs/protocol.md), as Mosquitto's `max_packet_size` in tools/broker.
# Every QoS 1 subscription of an MQTT client is a JetStream consumer; by default it takes the
# streams' replicas, a Raft group of 3 per subscription: connecting devices that subscribe at
# QoS 1 ran at 64 a second on this machine, 197 with one replica in memory (bench fleet,
# docs/scaling.md). What the fleet sends down goes at QoS 0 (fleet.worker) and a device's
# session is clean, so a consumer lost with its node holds nothing the device needs.
NODE_CONF = """\
# written by telegest (tools/cluster.py): node {index} of {nodes}
server_name: {name}
pid_file: "{pid_file}"
listen: {host}:{client_port}
http: {host}:{http_port}
max_payload: 65536
jetstream {{
  store_dir: "{store}"
  max_memory_store: {max_memory}
  max_file_store: {max_file}
}}
{cluster}mqtt {{
  listen: {host}:{mqtt_port}
  stream_replicas: {replicas}
  consumer_replicas: 1
  consumer_memory_storage: true
  # a login waits for its bcrypt check behind the others: a fleet coming back at once after
  # an outage must not be cut at the default 2 s (fleet.natsauth: cost 4, about 1.5 ms each)
  authorization {{ timeout: 10 }}
}}
{auth}"""
CLUSTER_CONF = """\
cluster {{
  name: {name}
  listen: {host}:{route_port}
  routes: [
{routes}
  ]
}}
"""


@dataclass
class Node:
    index: int
    name: str
    client_port: int
    route_port: int
    mqtt_port: int
    http_port: int
    folder: Path
    proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def conf(self) -> Path:
        return self.folder / "nats.conf"

    @property
    def log(self) -> Path:
        return self.folder / "nats.log"

    @property
    def pid_file(self) -> Path:
        return self.folder / "nats.pid"


class Cluster:
    """N nats-server processes on `host`, one cluster; see the module's docstring."""

    def __init__(self, nodes: int = 3, workdir: str | Path | None = None,
                 host: str = "127.0.0.1", name: str = "telegest",
                 auth_file: str | Path | None = None, replicas: int | None = None,
                 max_memory: str = "256MB", max_file: str = "4GB",
                 probe_login: tuple[str, str] | None = None) -> None:
        """`probe_login`: a user the authorization file lets in over MQTT (the fleet's
        worker), for the readiness probe; without an `auth_file` the probe is anonymous."""
        if nodes < 1:
            raise ClusterError(f"a cluster needs at least one node, not {nodes}")
        self.host, self.name = host, name
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="tg-cluster-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.auth_file = Path(auth_file).resolve() if auth_file else None
        self.replicas = replicas or min(3, nodes)
        if self.replicas > nodes:
            raise ClusterError(f"{self.replicas} replicas need at least as many nodes "
                               f"({nodes} asked)")
        self.max_memory, self.max_file = max_memory, max_file
        self.probe_login = probe_login
        self.nodes = [Node(i, f"tg-{i}", free_port(), free_port(), free_port(), free_port(),
                           self.workdir / f"node{i}") for i in range(nodes)]

    # -- addresses ---------------------------------------------------------------------------
    @property
    def mqtt_addresses(self) -> list[tuple[str, int]]:
        return [(self.host, n.mqtt_port) for n in self.nodes]

    @property
    def nats_urls(self) -> list[str]:
        return [f"nats://{self.host}:{n.client_port}" for n in self.nodes]

    @property
    def monitor_urls(self) -> list[str]:
        return [f"http://{self.host}:{n.http_port}" for n in self.nodes]

    @property
    def pid_files(self) -> list[Path]:
        """What fleet.natsauth signals to reload the users (TELEGEST_NATS_PID_FILES)."""
        return [n.pid_file for n in self.nodes]

    # -- configuration -----------------------------------------------------------------------
    def _write_conf(self, node: Node) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        routes = "\n".join(f"    nats-route://{self.host}:{n.route_port}" for n in self.nodes
                           if n is not node)
        # one node is a cluster of one: no routes (nats-server refuses a route-less cluster)
        cluster = (CLUSTER_CONF.format(name=self.name, host=self.host, route_port=node.route_port,
                                       routes=routes) if len(self.nodes) > 1 else "")
        if self.auth_file is not None and not self.auth_file.exists():
            raise ClusterError(f"the authorization file {self.auth_file} does not exist: "
                               "fleet.natsauth.NatsAuth writes it")
        # nats-server reads an include relative to the including file's folder
        auth = (f'include "{os.path.relpath(self.auth_file, node.folder)}"\n'
                if self.auth_file else "")
        node.conf.write_text(NODE_CONF.format(
            index=node.index, nodes=len(self.nodes), name=node.name, host=self.host,
            pid_file=node.pid_file, client_port=node.client_port, http_port=node.http_port,
            mqtt_port=node.mqtt_port, store=node.folder / "jetstream", cluster=cluster,
            replicas=self.replicas, max_memory=self.max_memory, max_file=self.max_file,
            auth=auth))

    # -- monitoring --------------------------------------------------------------------------
    def monitor(self, i: int, path: str = "varz", timeout: float = 2.0) -> dict:
        """Node i's HTTP monitoring endpoint (`varz`, `jsz`, `connz`, `routez`...) as JSON."""
        url = f"http://{self.host}:{self.nodes[i].http_port}/{path}"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())

    def meta_leader(self, i: int) -> str | None:
        """The JetStream meta leader's server name as node i sees it, or None."""
        try:
            return (self.monitor(i, "jsz").get("meta_cluster") or {}).get("leader") or None
        except (OSError, ValueError):
            return None

    def _tail(self, node: Node, chars: int = 800) -> str:
        return node.log.read_text(errors="replace")[-chars:] if node.log.exists() else ""

    def _wait_ready(self, nodes: list[Node], timeout: float) -> None:
        """Each of `nodes` listens (client and MQTT), sees a meta leader and accepts an MQTT
        connection. The first MQTT connection to a node makes its MQTT streams and its own
        consumer of the retained messages (nats-server does that lazily): made here, at
        start, they exist before a node is lost, when making them waits for new stream
        leaders."""
        deadline = time.monotonic() + timeout

        def listening(node: Node) -> bool:
            while time.monotonic() < deadline and node.running:
                if wait_port(self.host, node.client_port, 0.2) and \
                        wait_port(self.host, node.mqtt_port, 0.2):
                    return True
            return False

        for node in nodes:
            if not listening(node):
                code = node.proc.poll() if node.proc else None
                why = "still starting" if code is None else f"exited with code {code}"
                raise ClusterError(f"nats-server {node.name} did not listen on {self.host}:"
                                   f"{node.client_port}/{node.mqtt_port} ({why}). Its log:\n"
                                   f"{self._tail(node)}")
        for node in nodes if len(self.nodes) > 1 else []:  # one node: no meta group
            while self.meta_leader(node.index) is None:
                if time.monotonic() > deadline:
                    raise ClusterError(f"no JetStream meta leader seen by {node.name} within "
                                       f"{timeout:g} s (are the other nodes up?). Its log:\n"
                                       f"{self._tail(node)}")
                if not node.running:
                    raise ClusterError(f"nats-server {node.name} exited. Its log:\n"
                                       f"{self._tail(node)}")
                time.sleep(0.1)
        for node in nodes:
            why = ""
            while True:
                try:
                    code = mqtt_probe(self.host, node.mqtt_port, self.probe_login,
                                      client_id=f"tg-probe-{node.name}",
                                      timeout=max(0.5, min(10.0, deadline - time.monotonic())))
                    if code == 0:
                        break
                    why = f"CONNACK return code {code}"
                    if code in (4, 5):
                        raise ClusterError(f"nats-server {node.name} refused the readiness "
                                           f"probe's MQTT login ({why}): give Cluster a "
                                           f"probe_login the authorization file lets in")
                except OSError as e:
                    why = str(e)
                if time.monotonic() > deadline:
                    raise ClusterError(f"nats-server {node.name}'s MQTT listener did not accept "
                                       f"a connection within {timeout:g} s ({why}). Its log:\n"
                                       f"{self._tail(node)}")
                time.sleep(0.2)

    # -- life --------------------------------------------------------------------------------
    def _spawn(self, node: Node) -> None:
        path = nats_server_path()
        if path is None:
            raise ClusterError("nats-server is not installed (apt-get install nats-server)")
        for port in (node.client_port, node.route_port, node.mqtt_port, node.http_port):
            if not port_free(self.host, port):
                raise ClusterError(f"port {port} on {self.host} is taken by another program "
                                   f"(needed by {node.name})")
        self._write_conf(node)
        out = open(node.log, "ab")
        node.proc = subprocess.Popen([path, "-c", str(node.conf)], stdout=out,
                                     stderr=subprocess.STDOUT, cwd=node.folder)
        out.close()

    def start(self, timeout: float = 30.0) -> "Cluster":
        try:
            for node in self.nodes:
                if not node.running:
                    self._spawn(node)
            self._wait_ready(self.nodes, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """The running nodes are ready again (after a kill: a meta leader among them)."""
        self._wait_ready([n for n in self.nodes if n.running], timeout)

    def kill(self, i: int) -> None:
        """Node i's abrupt outage: SIGKILL, no goodbye to its clients or routes."""
        node = self.nodes[i]
        if node.running:
            node.proc.kill()
            node.proc.wait()
        node.proc = None

    def restart(self, i: int, timeout: float = 30.0) -> None:
        """Start node i again (same ports, same store), after stopping it if it runs."""
        node = self.nodes[i]
        if node.running:
            self._stop_node(node)
        deadline = time.monotonic() + 10
        while not all(port_free(self.host, p) for p in (node.client_port, node.route_port,
                                                       node.mqtt_port, node.http_port)):
            if time.monotonic() > deadline:
                break  # _spawn says which port is taken
            time.sleep(0.1)
        self._spawn(node)
        self._wait_ready([node], timeout)

    def reload(self, timeout: float = 10.0) -> None:
        """Every running node reads its configuration (and the authorization file) again;
        returns once each has, raises ClusterError naming a node that refused the file."""
        before = {}
        for node in self.nodes:
            if node.running:
                self._write_conf(node)
                before[node.index] = self.monitor(node.index).get("config_load_time")
        for node in self.nodes:
            if node.index in before:
                node.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        for index, loaded in before.items():
            while True:
                try:
                    now = self.monitor(index).get("config_load_time")
                except (OSError, ValueError):
                    now = loaded
                if now != loaded:
                    break
                if time.monotonic() > deadline:
                    node = self.nodes[index]
                    raise ClusterError(f"{node.name} did not reload its configuration within "
                                       f"{timeout:g} s (a bad authorization file?). Its log:\n"
                                       f"{self._tail(node)}")
                time.sleep(0.05)

    def _stop_node(self, node: Node, timeout: float = 10.0) -> None:
        if node.proc is not None:
            stop_process(node.proc, timeout)
        node.proc = None

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self._stop_node(node)

    @property
    def running(self) -> list[bool]:
        return [n.running for n in self.nodes]

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
