"""Start, stop and restart an MQTT broker for `telegest up`, the tests and the benchmarks.

The plain listener is on a loopback address (127.0.0.1 by default): only this machine's
processes (the fleet's worker and API) reach it. Boxes come through the TLS listener
(`tls_port`, on every address), with the certificate of a tools.pki folder (mosquitto only).

Mosquitto when it is installed (the production broker), otherwise the embedded amqtt broker
(MQTT 3.1.1 only: the fleet then subscribes without a shared subscription). Both run as child
processes so that a test can stop, kill and restart them like a real outage.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class BrokerError(RuntimeError):
    """The broker could not be started; the message says why and what to do."""


# Under pytest-xdist (PYTEST_XDIST_WORKER=gw0, gw1, ...; the processes a test starts inherit
# it) each worker takes its ports from a range of its own, below Linux's ephemeral range
# (32768-60999, where bind(0) and outgoing connections take theirs): two workers never pick
# the same port between one's free_port() and its server's bind. Outside xdist, or past 12
# workers, the kernel picks (bind to port 0).
WORKER_PORTS_START, WORKER_PORTS_SPAN, WORKER_PORTS_MAX = 20000, 1000, 12
_cursor: list[int] = []  # where this process goes on in its worker's range


def worker_ports(worker: str | None = None) -> range | None:
    """The ports of the pytest-xdist worker `worker` (default: this process's), or None."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "") if worker is None else worker
    if not (name.startswith("gw") and name[2:].isdigit()) or int(name[2:]) >= WORKER_PORTS_MAX:
        return None
    start = WORKER_PORTS_START + int(name[2:]) * WORKER_PORTS_SPAN
    return range(start, start + WORKER_PORTS_SPAN)


def free_port() -> int:
    ports = worker_ports()
    if ports is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    if not _cursor:  # the processes of one worker (a test, the `telegest up` it runs) start
        _cursor.append(os.getpid() * 7919)  # at different places of its range
    for _ in range(len(ports)):
        port = ports[_cursor[0] % len(ports)]
        _cursor[0] += 1
        with socket.socket() as s:  # every address, no SO_REUSEADDR: skips TIME_WAIT too
            try:
                s.bind(("", port))
            except OSError:
                continue
        return port
    raise BrokerError(f"no free port in {ports.start}-{ports.stop - 1} (this test worker's)")


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM a server that still runs, SIGKILL it if it has not ended within `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def wait_port(host: str, port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None
    )


MOSQUITTO_CONF = """\
# written by telegest: a loopback listener for {purpose}
listener {port} {host}
allow_anonymous true
persistence false
# the fleet may lag behind a burst: queue rather than drop (devices resend anyway), but no
# client may make the broker hold more than 64 MiB for it
max_queued_messages 200000
max_queued_bytes 67108864
max_inflight_messages 100
# every message of the device protocol is under 1 KiB (docs/protocol.md); 64 KiB leaves room
# for the dynamic security admin's commands. A bigger packet drops its sender.
max_packet_size 65536
# no cap on connections (the fleet bench holds 10,000); the file limit is the process's
max_connections -1
log_dest file {log}
log_type error
log_type warning
log_type notice
connection_messages true
"""

# Broker(tls_port=...): the listener the boxes use, on every address; TLS 1.2 at least, the
# server certificate signed by the CA the boxes are provisioned with (tools/pki.py)
TLS_CONF = """\
# the boxes' listener: TLS only, on every address
listener {port}
cafile {ca}
certfile {cert}
keyfile {key}
tls_version tlsv1.2
"""

# Broker(auth=True): the dynamic security plugin decides who may connect and what each client
# may publish and subscribe to; the fleet drives it (fleet.brokerauth).
DYNSEC_CONF = """\
# telegest: device identities are enforced by the dynamic security plugin
per_listener_settings false
allow_anonymous false
plugin {plugin}
plugin_opt_config_file {config}
"""


class Broker:
    """One broker child process on a loopback port; `kind` is 'mosquitto' or 'amqtt'."""

    def __init__(
        self,
        kind: str = "auto",
        port: int | None = None,
        host: str = "127.0.0.1",
        workdir: str | Path | None = None,
        purpose: str = "telegest",
        auth: bool = False,
        admin: tuple[str, str] | None = None,
        worker: tuple[str, str] | None = None,
        tls_port: int | None = None,
        pki: str | Path | None = None,
    ) -> None:
        """`auth=True` (mosquitto only): no anonymous clients; the dynamic security plugin
        starts from a generated dynamic-security.json holding the fleet's dynsec `admin` and
        ingest `worker` clients (random passwords when not given: read them from
        `.admin` / `.worker`). The embedded amqtt broker is for development and always
        anonymous. `tls_port` (mosquitto only): a TLS listener on every address with the CA
        and server certificate of the tools.pki folder `pki`."""
        if kind == "auto":
            kind = "mosquitto" if mosquitto_path() else "amqtt"
        if kind not in ("mosquitto", "amqtt"):
            raise BrokerError(f"unknown broker kind {kind!r}: use mosquitto, amqtt or auto")
        if kind == "mosquitto" and not mosquitto_path():
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto), "
                              "or use the embedded broker (--broker amqtt)")
        self.kind = kind
        self.host = host
        self.port = port or free_port()
        self.purpose = purpose
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="tg-broker-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.auth = auth
        if auth and kind != "mosquitto":
            raise BrokerError("broker authentication needs mosquitto and its dynamic security "
                              "plugin; the embedded amqtt broker is anonymous (development "
                              "only)")
        if tls_port is not None and (kind != "mosquitto" or pki is None):
            raise BrokerError("a TLS listener needs mosquitto and a PKI folder (tools.pki); "
                              "the embedded amqtt broker has none")
        self.tls_port = tls_port
        self.pki = Path(pki) if pki is not None else None
        from fleet.brokerauth import new_password

        self.admin = admin or ("fleet-admin", new_password())
        self.worker = worker or ("fleet-worker", new_password())

    @property
    def dynsec_path(self) -> Path:
        return self.workdir / "dynamic-security.json"

    def _write_dynsec(self) -> str:
        import json

        from fleet.brokerauth import DYNSEC_PLUGIN, initial_config
        from fleet.private_files import write_private

        if not os.path.exists(DYNSEC_PLUGIN):
            raise BrokerError(f"{DYNSEC_PLUGIN} is missing: install Debian's mosquitto 2.0 "
                              "(it ships the dynamic security plugin)")
        # written once: afterwards the plugin owns the file (it saves every change), so a
        # restarted broker keeps the devices the fleet provisioned
        if not self.dynsec_path.exists():
            write_private(self.dynsec_path, json.dumps(
                initial_config(self.admin, self.worker), indent=1))
        text = DYNSEC_CONF.format(plugin=DYNSEC_PLUGIN, config=self.dynsec_path)
        # started as root (a container, CI), mosquitto would drop to the `mosquitto` user,
        # who cannot read a root-owned test folder: stay the user that wrote the file
        return text + ("user root\n" if os.geteuid() == 0 else "")

    @property
    def supports_v5(self) -> bool:
        return self.kind == "mosquitto"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.kind}.log"

    def _command(self) -> list[str]:
        if self.kind == "mosquitto":
            conf = self.workdir / "mosquitto.conf"
            text = MOSQUITTO_CONF.format(
                port=self.port, host=self.host, log=self.log_path, purpose=self.purpose)
            if self.auth:
                text = text.replace("allow_anonymous true\n", "") + self._write_dynsec()
            if self.tls_port is not None:
                from tools.pki import Pki, mosquitto_lines

                text += mosquitto_lines(Pki(self.pki), self.tls_port)
            conf.write_text(text)
            return [str(mosquitto_path()), "-c", str(conf)]
        return [sys.executable, "-m", "tools.embedded_broker", "--host", self.host,
                "--port", str(self.port)]

    def start(self, timeout: float = 10.0) -> "Broker":
        if self.running:
            return self
        if not port_free(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is taken by another program: "
                              f"stop it or choose another port")
        if self.tls_port is not None and not port_free("0.0.0.0", self.tls_port):
            raise BrokerError(f"the TLS port {self.tls_port} is taken by another program: "
                              f"stop it or choose another port")
        out = open(self.workdir / f"{self.kind}.out", "ab")
        self.proc = subprocess.Popen(self._command(), stdout=out, stderr=subprocess.STDOUT,
                                     cwd=Path(__file__).resolve().parent.parent)
        out.close()
        if not wait_port(self.host, self.port, timeout) or (
                self.tls_port is not None and not wait_port("127.0.0.1", self.tls_port, timeout)):
            code = self.proc.poll()
            self.stop()
            tail = ""
            for name in (f"{self.kind}.out", f"{self.kind}.log"):
                p = self.workdir / name
                if p.exists():
                    tail += p.read_text(errors="replace")[-600:]
            why = "port already in use?" if code is None else f"exited with code {code}"
            raise BrokerError(f"{self.kind} did not listen on {self.host}:{self.port} "
                              f"({why}). Its output:\n{tail}")
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        """An abrupt outage: SIGKILL, no goodbye to the clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        if down_s:
            time.sleep(down_s)
        self.start()

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
