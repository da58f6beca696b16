"""`telegest up`: the whole system on one machine, on embedded defaults.

An SQLite file, a broker started here, the ingest worker, the API on localhost, a demo agency
with today's planning and a few virtual readers tapping. The broker is mosquitto when installed,
authenticated as in production (tools/up_broker.py: each process and each reader logs in with
its own credentials), else the embedded amqtt, anonymous. Mosquitto has two listeners: a plain
one on 127.0.0.1 for the fleet's worker and API, and a TLS one on every address for the boxes,
with a CA made on first start in <data>/pki (tools/pki.py); the Python readers use TLS. Each
part is a child process with its log in <data>/logs; Ctrl-C stops them all, readers first, so
that nothing is left half-sent. A part that dies is started again with backoff (Supervisor);
one that keeps dying stops it all.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fleet.brokerauth import DYNSEC_PLUGIN
from fleet.private_files import write_private
from tools.broker import Broker, BrokerError, free_port, mosquitto_path, port_free, wait_port
from tools.errors import TelegestError
from tools.pki import DEFAULT_NAMES, Pki, ensure
from tools.up_broker import CREDENTIALS, admit, process_env, write_credentials

ROOT = Path(__file__).resolve().parent.parent


def seed(db_url: str, history: bool = False, now=None) -> dict:
    """Migrate, create the demo agency with today's planning (idempotent); with `history`,
    also its past two weeks (fleet.demo_history: clocked, late, corrected, validated visits,
    funders), as `telegest up` and `telegest fleet demo` do."""
    from datetime import datetime, timezone

    from fleet.db import make_engine, migrate, session_factory
    from fleet.demo import demo_day, seed_demo

    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            now = now or datetime.now(timezone.utc)
            info = seed_demo(session, demo_day(now), now)
            session.commit()
            if history:
                from fleet.demo_history import seed_history

                info["history"] = seed_history(session, info, now)
                session.commit()
            return info
    finally:
        engine.dispose()


def admin_key(db_url: str, key_file: Path) -> str:
    """The admin API key of this installation, created once and kept in a 0600 file."""
    if key_file.exists():
        return key_file.read_text().strip()
    from fleet.db import make_engine, session_factory
    from fleet.keys import create_api_key

    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            key = create_api_key(session, "admin", "telegest up")
            session.commit()
    finally:
        engine.dispose()
    write_private(key_file, key + "\n")
    return key


class Children:
    """Child processes started in order, stopped in reverse order; each can be started again
    with the same command (the supervisor does)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.specs: dict[str, tuple[list[str], dict[str, str] | None]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.specs[name] = (argv, env)
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        log.close()
        self.procs = [(n, p) for n, p in self.procs if n != name] + [(name, proc)]

    def restart(self, name: str) -> None:
        self.start(name, *self.specs[name])

    def dead(self) -> dict[str, int]:
        """The children that exited, with their exit codes."""
        return {name: p.returncode for name, p in self.procs if p.poll() is not None}

    def stop(self) -> None:
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


class Supervisor:
    """Restarts a part of `up` that died (the broker, the worker, the API, the readers), after
    1, 2, 4, 8... seconds; after `MAX_DEATHS` deaths of one part within `WINDOW_S`, gives up:
    `up` stops everything and says why. Each death and restart is printed and logged
    (<data>/logs/up.log). The readers' journals make a broker restart lossless."""

    MAX_DEATHS, WINDOW_S, MAX_BACKOFF_S = 5, 60.0, 16.0

    def __init__(self, children: Children, broker: Broker, log_dir: Path,
                 clock=time.monotonic) -> None:
        self.children, self.broker = children, broker
        self.log = log_dir / "up.log"
        self.clock = clock
        self.deaths: dict[str, list[float]] = {}
        self.pending: dict[str, float] = {}  # part -> when to start it again

    def say(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        print(f"  {line}", flush=True)
        with open(self.log, "a") as f:
            f.write(line + "\n")

    def _died(self, name: str, why: str) -> None:
        now = self.clock()
        times = [t for t in self.deaths.get(name, []) if t > now - self.WINDOW_S] + [now]
        self.deaths[name] = times
        if len(times) >= self.MAX_DEATHS:
            raise TelegestError(f"{name} died {len(times)} times within "
                                f"{int(self.WINDOW_S)} s ({why}): stopping everything; see "
                                f"{self.log.parent}")
        wait = min(self.MAX_BACKOFF_S, 2.0 ** (len(times) - 1))
        self.pending[name] = now + wait
        self.say(f"{name} {why}: restarting in {wait:g} s (death {len(times)} of "
                 f"{self.MAX_DEATHS} allowed within {int(self.WINDOW_S)} s)")

    def check(self) -> None:
        """One pass: note deaths, start again what is due. Raises TelegestError to give up."""
        if "broker" not in self.pending and not self.broker.running:
            code = self.broker.proc.poll() if self.broker.proc is not None else None
            self.broker.proc = None
            self._died("broker", f"stopped (exit {code})")
        for name, code in self.children.dead().items():
            if name not in self.pending:
                self._died(name, f"stopped (exit {code})")
        for name, due in list(self.pending.items()):
            if self.clock() < due:
                continue
            del self.pending[name]
            try:
                if name == "broker":
                    self.broker.start()
                else:
                    self.children.restart(name)
            except BrokerError as e:
                self._died(name, f"did not start again ({e})")
                continue
            self.say(f"{name} restarted")


def stop_on_signals() -> dict:
    """A flag that SIGINT and SIGTERM set: `up` then stops its parts in order (supervise)."""
    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def supervise(supervisor: Supervisor, stop: dict, for_seconds: float | None) -> None:
    """Keep the parts running (Supervisor.check every half second) until a signal sets `stop`
    or `for_seconds` have passed."""
    deadline = time.monotonic() + for_seconds if for_seconds else None
    while not stop["now"]:
        supervisor.check()
        if deadline and time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print("stopping...", flush=True)


def fleet_env(db_url: str, api_port: int) -> dict[str, str]:
    """What every process of a development fleet shares: its database, and the links the fleet
    hands out (enrolment QR codes, e-mails), this API's unless TELEGEST_PUBLIC_URL says."""
    return {"TELEGEST_DATABASE_URL": db_url, "TELEGEST_PUBLIC_URL": os.environ.get(
        "TELEGEST_PUBLIC_URL") or f"http://127.0.0.1:{api_port}"}


def banner(data: Path, port: int, broker: Broker, creds_file: Path | None,
           readers: list[str], held: dict[str, str]) -> None:
    url = f"127.0.0.1:{broker.port}"
    if creds_file:
        print(f"  broker   {broker.kind} on {url}, authenticated: one login per process and "
              f"reader (dynamic security)\n           credentials in {creds_file}")
    else:
        print(f"  broker   {broker.kind} on {url}, anonymous: development only, a blocked "
              f"device is not refused")
    if broker.tls_port is not None:
        print(f"  boxes    TLS on port {broker.tls_port} (every address), CA "
              f"{Pki(broker.pki).ca_cert}; {url} is for this machine only")
    print(f"  API      http://127.0.0.1:{port}/docs   (key in {data / 'api-key.txt'})")
    print(f"  board    http://127.0.0.1:{port}/board")
    login = f" --credentials {creds_file}" if creds_file else ""
    print(f"  readers  {', '.join(readers) or 'none'}\n           tap one: telegest device tap "
          f"{readers[0] if readers else 'demo-r1'} <badge> --broker {url}{login}")
    if held:
        print(f"  refused  {', '.join(f'{d} ({s})' for d, s in held.items())}: not started, "
              f"the fleet refuses it")
    print(f"  logs     {data / 'logs'}")
    print("Ctrl-C stops everything.", flush=True)


def tls_names(extra: list[str] | None) -> list[str]:
    """The names the broker's certificate is for: loopback, this machine's name, and the
    names or addresses given (`--tls-name`, what a box on the desk dials)."""
    names = list(DEFAULT_NAMES) + [socket.gethostname()] + list(extra or [])
    return list(dict.fromkeys(n for n in names if n))


def run_up(args) -> int:
    data = Path(args.data).resolve()
    (data / "logs").mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{data / 'telegest.db'}"
    print(f"telegest up: data in {data}")
    info = seed(db_url, history=True)
    admin_key(db_url, data / "api-key.txt")  # created once, read by the user from the file

    mqtt_port = args.mqtt_port or (1883 if port_free("127.0.0.1", 1883) else free_port())
    if not port_free("127.0.0.1", args.port):
        raise TelegestError(f"port {args.port} is taken on localhost: stop what uses it or "
                            f"pass --port")
    kind = args.broker if args.broker != "auto" else "mosquitto" if mosquitto_path() else "amqtt"
    if kind == "mosquitto" and not os.path.exists(DYNSEC_PLUGIN):
        raise TelegestError(f"{DYNSEC_PLUGIN} is missing: `telegest up` runs mosquitto with its "
                            f"dynamic security plugin (Debian's mosquitto 2.0 ships it); or run "
                            f"the embedded broker, anonymous: --broker amqtt")
    creds_file = data / CREDENTIALS
    creds_file.unlink(missing_ok=True)  # it describes the broker started now, or none
    tls_port = pki = None
    if kind == "mosquitto":  # the boxes' listener: TLS, with a CA made once and kept
        tls_port = args.mqtts_port or (8883 if port_free("0.0.0.0", 8883) else free_port())
        pki = ensure(data / "pki", tls_names(getattr(args, "tls_name", None)))
    try:
        broker = Broker(kind, port=mqtt_port, workdir=data / "broker", purpose="telegest up",
                        auth=kind == "mosquitto", tls_port=tls_port,
                        pki=pki.folder if pki else None)
        broker.dynsec_path.unlink(missing_ok=True)  # rebuilt at every start: tools/up_broker.py
        broker.start()
    except BrokerError as e:
        raise TelegestError(str(e))
    broker_url = f"127.0.0.1:{broker.port}"
    children = Children(data / "logs")
    stop = stop_on_signals()
    try:
        creds, refused = admit(broker, db_url, info["devices"]) if broker.auth else (None, {})
        sim_login = []
        if creds:
            if tls_port is not None:
                creds["tls"] = {"broker": f"127.0.0.1:{tls_port}", "ca": str(pki.ca_cert)}
            write_credentials(creds_file, creds)
            sim_login = ["--credentials", str(creds_file)]
        worker_env, api_env = process_env(creds, broker.host, broker.port)
        env = fleet_env(db_url, args.port)
        protocol = "v5" if broker.supports_v5 else "v311"
        children.start("worker", ["tools.cli", "fleet", "worker", "--db", db_url,
                                  "--broker", broker_url, "--protocol", protocol],
                       {**env, **worker_env})
        children.start("api", ["tools.cli", "fleet", "api", "--db", db_url,
                               "--port", str(args.port)], {**env, **api_env})
        if not wait_port("127.0.0.1", args.port, 30):
            raise TelegestError(f"the API did not start: see {data / 'logs' / 'api.log'}")
        readers = info["devices"][: args.readers]
        held = {d: refused[d] for d in readers if d in refused}
        readers = [d for d in readers if d not in held]
        if readers:
            readers_url = broker_url
            if getattr(args, "readers_on", "python") == "wasm":
                # the real firmware on MicroPython: no demo taps, `telegest device tap` only;
                # no ssl module there: the plain local listener
                how = ["--board", "wasm"]
            else:
                how = ["--journal-dir", str(data / "journals"), "--tap-every",
                       str(args.tap_every), "--health-every", "30"]
                if tls_port is not None:  # as the boxes do: TLS, the broker verified
                    readers_url = f"127.0.0.1:{tls_port}"
                    how += ["--ca", str(pki.ca_cert)]
            children.start("readers", ["tools.cli", "device", "sim", "--broker", readers_url,
                                       "--db", db_url, "--devices", ",".join(readers), *how,
                                       *sim_login], env)
        banner(data, args.port, broker, creds_file if creds else None, readers, held)
        supervise(Supervisor(children, broker, data / "logs"), stop, args.for_seconds)
        return 0
    finally:
        children.stop()
        broker.stop()
        print("stopped.")
