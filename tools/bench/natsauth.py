"""`telegest bench nats-auth`: what the NATS cluster's per-device users cost (fleet.natsauth).

In one run: a cluster of `--nodes` nats-servers (tools.cluster) including the fleet's users
file, `--devices` devices provisioned in one batch (one reload) at bcrypt cost `--cost`, then
all of them logged in over MQTT 3.1.1 (raw CONNECTs, spread over the nodes, `--connect-batch`
at a time, as a fleet coming back after an outage). Measured:

- `provision_s`: hashing every password and writing the files (the fleet's side);
- `login_cpu_ms_per_device`: the nodes' CPU (user + system, from /proc) per accepted login;
- `reload_s`, `reload_cpu_s`: one reload (`NatsAuth.reload`: SIGHUP, every node's new
  `config_load_time`) with every device connected: nats-server re-checks each connected
  client's password, so this grows with the fleet;
- `block_to_disconnect_s`: from `NatsAuth.disable()` called to the blocked device's socket
  closed by its node;
- `publish_stall_ms_max`: the longest QoS 1 round trip (PUBLISH to PUBACK) of a client
  publishing every 20 ms on each node during that reload: whether a reload stops the traffic.

Prints one JSON object.
"""
from __future__ import annotations

import json
import os
import resource
import socket
import tempfile
import threading
import time
from pathlib import Path

from tools.cluster import Cluster, _mqtt_string
from tools.errors import TelegestError


def _raise_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_s(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _connect_packet(client_id: str, username: str, password: str) -> bytes:
    body = (_mqtt_string(b"MQTT") + bytes([4, 0xC2]) + (0).to_bytes(2, "big")
            + _mqtt_string(client_id.encode()) + _mqtt_string(username.encode())
            + _mqtt_string(password.encode()))
    n, length = len(body), b""
    while True:  # MQTT's variable length
        byte, n = n % 128, n // 128
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    return b"\x10" + length + body


def _connect_all(addresses, logins, batch: int) -> tuple[dict[int, socket.socket], dict]:
    """Every login connected (clean session, no keepalive), `batch` CONNECTs before their
    CONNACKs are read: (the sockets by login index, the failures counted by kind)."""
    socks: dict[int, socket.socket] = {}
    failed: dict[str, int] = {}

    def fail(kind: str, s: socket.socket | None) -> None:
        failed[kind] = failed.get(kind, 0) + 1
        if s is not None:
            s.close()

    for start in range(0, len(logins), batch):
        chunk = []
        for i, (user, password) in enumerate(logins[start:start + batch], start):
            try:
                s = socket.create_connection(addresses[i % len(addresses)], timeout=60)
                s.sendall(_connect_packet(user, user, password))
                chunk.append((i, s))
            except OSError as e:
                fail(type(e).__name__, None)
        for i, s in chunk:
            ack = b""
            try:
                while len(ack) < 4:
                    part = s.recv(4 - len(ack))
                    if not part:
                        break
                    ack += part
            except OSError as e:
                fail(type(e).__name__, s)
                continue
            if len(ack) == 4 and ack[0] == 0x20 and ack[3] == 0:
                socks[i] = s
            else:
                fail(f"connack {ack[3]}" if len(ack) == 4 else "closed", s)
    return socks, failed


class Stall:
    """A client on one node publishing QoS 1 every 20 ms; the longest PUBLISH->PUBACK, one
    still waiting included."""

    def __init__(self, address, login) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                             client_id=f"bench-stall-{address[1]}")
        self.c.username_pw_set(*login)
        ready = threading.Event()
        self.c.on_connect = lambda _c, _u, _f, rc, _p: None if rc.is_failure else ready.set()
        self.c.connect(*address)
        self.c.loop_start()
        if not ready.wait(60):
            raise TelegestError(f"the stall probe could not log in at {address}")
        self.worst, self.pending = 0.0, None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.pending = time.monotonic()
            self.c.publish("bench/stall", b"x", qos=1).wait_for_publish(600)
            self.worst = max(self.worst, time.monotonic() - self.pending)
            self.pending = None
            self.stop.wait(0.02)

    def longest(self) -> float:
        pending = self.pending
        return max(self.worst, time.monotonic() - pending if pending else 0.0)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.c.disconnect()
        self.c.loop_stop()


def say(text: str) -> None:
    import sys

    print(f"bench nats-auth: {text}", file=sys.stderr, flush=True)


def run(devices: int, nodes: int = 3, cost: int = 4, connect_batch: int = 500) -> dict:
    from fleet.brokerauth import new_password
    from fleet.natsauth import NatsAuth, NatsAuthSettings

    limit = _raise_file_limit()
    if devices + 200 > limit:
        raise TelegestError(f"{devices} devices need {devices + 200} open files here; the limit "
                            f"is {limit}")
    work = Path(tempfile.mkdtemp(prefix="tg-bench-natsauth-"))
    cluster = Cluster(nodes, workdir=work / "cluster")
    auth = NatsAuth(NatsAuthSettings(work / "users.conf", tuple(cluster.pid_files),
                                     tuple(cluster.monitor_urls), cost, reload_timeout=600))
    admin, worker = ("fleet-admin", new_password()), ("fleet-worker", new_password())
    auth.init(admin, worker)
    logins = [(f"bench-{i:05d}", new_password()) for i in range(devices)]
    t = time.monotonic()
    with auth._locked():  # the whole fleet in one write (provision() one by one re-reads it)
        users = auth.users()
        for ident, password in logins:
            users[ident] = auth._device_login(ident, password, True)
        auth._save(users)
    provision_s = time.monotonic() - t
    cluster.auth_file, cluster.probe_login = auth.path.resolve(), worker
    socks: dict[int, socket.socket] = {}
    stalls: list[Stall] = []
    try:
        cluster.start(timeout=120)
        pids = [n.proc.pid for n in cluster.nodes]
        # logged in before the fleet, publishing only around the reload
        stalls = [Stall(a, admin) for a in cluster.mqtt_addresses]
        say(f"{devices} devices provisioned in {provision_s:.1f} s; logging them in")
        cpu0, t = _cpu_s(pids), time.monotonic()
        socks, refused = _connect_all(cluster.mqtt_addresses, logins, connect_batch)
        connect_s, login_cpu = time.monotonic() - t, _cpu_s(pids) - cpu0
        say(f"{len(socks)} logged in within {connect_s:.1f} s ({refused or 'no failure'}); "
            "reloading")
        for s in stalls:
            s.thread.start()
        time.sleep(1)
        base = max(s.longest() for s in stalls)
        cpu0, t = _cpu_s(pids), time.monotonic()
        auth.reload()
        reload_s, reload_cpu = time.monotonic() - t, _cpu_s(pids) - cpu0
        time.sleep(1)
        stall = max(s.longest() for s in stalls)

        say(f"reloaded in {reload_s:.1f} s; blocking one device")
        if not socks:
            raise TelegestError(f"no device could log in ({refused})")
        first = min(socks)
        victim = socks[first]
        victim.settimeout(600)
        t = time.monotonic()
        auth.disable(logins[first][0])
        gone = False
        while True:  # nats-server answers a CONNACK "not authorized" (5), then closes
            try:
                if victim.recv(64) == b"":
                    gone = True
                    break
            except OSError:
                gone = True
                break
        block_s = time.monotonic() - t
        return {
            "bench": "nats-auth", "nodes": nodes, "devices": devices, "bcrypt_cost": cost,
            "connected": len(socks), "failed": refused,
            "provision_s": round(provision_s, 2),
            "connect_s": round(connect_s, 2),
            "login_cpu_ms_per_device": round(1000 * login_cpu / max(1, len(socks)), 3),
            "reload_s": round(reload_s, 2), "reload_cpu_s": round(reload_cpu, 2),
            "block_to_disconnect_s": round(block_s, 2), "blocked_disconnected": gone,
            "publish_stall_ms_max": round(1000 * stall, 1),
            "publish_ms_max_before_reload": round(1000 * base, 1),
        }
    finally:
        for s in stalls:
            s.close()
        for s in socks.values():
            s.close()
        cluster.stop()


def run_bench_nats_auth(args) -> int:
    result = run(args.devices, args.nodes, args.cost, args.connect_batch)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0
