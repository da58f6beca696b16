"""`telegest device sim`: run N virtual readers in one process, and `telegest device tap`.

Each reader's planning comes from the fleet's database (`--db`), from a JSON file (`--config`),
or is empty. Taps come from the control topic (`telegest device tap`), from a random demo
schedule (`--tap-every`), or from a script (`--taps N`: tap until each journal holds N events,
one line per tap appended to `--tap-log`, for the chaos tests). On a broker that enforces
identities, `--credentials FILE` (the file `telegest up` writes) gives each reader its login,
and `telegest device tap` the `sim-control` login. `--ca FILE` (the broker's CA, as provisioned
on a box): the readers speak TLS and verify the broker against it.
"""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from tools.errors import TelegestError
from tools.sim.reader import SIM_TAP_TOPIC, VirtualReader

log = logging.getLogger("telegest.sim")

EMPTY_CONFIG: dict = {"version": 0, "tz": "UTC", "tolerance_min": 30, "badges": [], "visits": []}


def parse_broker(url: str) -> tuple[str, int]:
    """'host:port', 'mqtt://host:port' or 'host' -> (host, port)."""
    rest = url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "1883")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise TelegestError(f"bad broker address {url!r}: expected host:port, e.g. 127.0.0.1:1883")


def configs_from_db(db_url: str, devices: list[str] | None) -> dict[str, dict]:
    """Each reader's config as the fleet would push it (planning of its home, allow-list)."""
    from fleet.db import make_engine, session_factory
    from fleet.models import Device
    from fleet.planning import device_config
    from sqlalchemy import select

    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            if not devices:
                devices = list(session.scalars(
                    select(Device.ident).where(Device.kind == "reader").order_by(Device.ident)))
            now = int(time.time())
            return {d: device_config(session, d, now) for d in devices}
    finally:
        engine.dispose()


def configs_from_file(path: str, devices: list[str]) -> dict[str, dict]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise TelegestError(f"cannot read the reader config {path}: {e}")
    if "visits" in data:  # one config for every reader
        return {d: data for d in devices}
    return {d: data.get(d, EMPTY_CONFIG) for d in devices}


def pick_badge(config: dict, now: int, rng: random.Random) -> str | None:
    """A badge planned around now at this home if there is one, else any allowed badge."""
    tol = int(config.get("tolerance_min", 30)) * 60
    near = [v[1] for v in config.get("visits", []) if v[2] - tol <= now <= v[3] + tol]
    pool = near or config.get("badges", [])
    return rng.choice(pool) if pool else None


class Fleet:
    """Several virtual readers sharing one process."""

    def __init__(self, readers: list[VirtualReader]) -> None:
        self.readers = readers
        self.stopping = threading.Event()

    def start(self) -> "Fleet":
        for r in self.readers:
            r.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for r in self.readers:
            r.stop()

    def demo_taps(self, every_s: float, seed: int | None = None) -> None:
        rng = random.Random(seed)
        while not self.stopping.wait(every_s):
            r = rng.choice(self.readers)
            uid = pick_badge(r.config, r.clock.time(), rng)
            if uid:
                log.info("%s: demo tap %s -> %s", r.device_id, uid, r.tap(uid))

    def scripted_taps(self, target: int, interval_s: float, tap_log: str | None) -> None:
        """Tap until every journal holds `target` events; log each tap after its feedback."""
        out = open(tap_log, "a", buffering=1) if tap_log else None
        try:
            rng = random.Random()
            while not self.stopping.is_set():
                todo = [r for r in self.readers if r.last_seq < target]
                if not todo:
                    return
                for r in todo:
                    uid = pick_badge(r.config, r.clock.time(), rng) or "04000000000001"
                    kind = r.tap(uid)
                    if out and kind != "full":
                        out.write(f"{r.device_id} {r.last_seq} {kind}\n")
                        os.fsync(out.fileno())
                if interval_s:
                    time.sleep(interval_s)
        finally:
            if out:
                out.close()

    def health_loop(self, every_s: float) -> None:
        while not self.stopping.wait(every_s):
            for r in self.readers:
                if r.connected.is_set():
                    r.send_health()


def build_fleet(device_ids: list[str], configs: dict[str, dict], host: str, port: int,
                journal_root: str | Path, ack_timeout: float = 5.0,
                logins: dict[str, dict] | None = None, ca: str | None = None,
                brokers: list[tuple[str, int]] | None = None) -> Fleet:
    """`logins`: each device's {"username", "password"}; none: anonymous. `ca`: the
    broker's CA certificate (PEM): TLS. `brokers`: more addresses; reader i starts at the
    i-th address of the whole list (the readers spread over a cluster's nodes)."""
    everyone = [(host, port), *[b for b in brokers or [] if b != (host, port)]]
    readers = []
    for i, d in enumerate(device_ids):
        cfg = configs.get(d, EMPTY_CONFIG)
        login = (logins or {}).get(d, {})
        first = everyone[i % len(everyone)]
        r = VirtualReader(d, *first, Path(journal_root) / d, cfg, ack_timeout=ack_timeout,
                          username=login.get("username"), password=login.get("password"),
                          ca=ca, brokers=everyone)
        readers.append(r)
    return Fleet(readers)


def device_logins(path: str, devices: list[str]) -> dict[str, dict]:
    from tools.up_broker import read_credentials

    logins = read_credentials(path).get("devices", {})
    missing = [d for d in devices if d not in logins]
    if missing:
        raise TelegestError(f"no credentials for {', '.join(missing)} in {path}: provision "
                            f"them, or leave them out of --devices")
    return logins


def run_sim(args) -> int:
    (host, port), *more = [parse_broker(b) for b in args.broker.split(",") if b.strip()]
    devices = [d for d in (args.devices or "").split(",") if d]
    if not devices and args.count:
        devices = [f"{args.prefix}{i}" for i in range(1, args.count + 1)]
    if args.db:
        configs = configs_from_db(args.db, devices or None)
        devices = devices or sorted(configs)
    elif args.config:
        configs = configs_from_file(args.config, devices)
    else:
        configs = {}
    if not devices:
        raise TelegestError("no devices to simulate: give --devices, --count or --db")
    logins = device_logins(args.credentials, devices) if args.credentials else None
    ca = None
    if getattr(args, "ca", None):
        from tools.pki import read_ca

        ca = read_ca(args.ca)
    if more and getattr(args, "board", "python") == "wasm":
        raise TelegestError("several --broker addresses drive the Python readers only; the "
                            "wasm boxes take one")
    if getattr(args, "board", "python") == "wasm":
        if ca:
            raise TelegestError("--ca: the WebAssembly MicroPython has no ssl module, the "
                                "wasm boxes cannot speak TLS; run them on the broker's "
                                "local plain listener (docs/virtual-board.md)")
        return _run_wasm(args, devices, host, port, logins)
    fleet = build_fleet(devices, configs, host, port, args.journal_dir, args.ack_timeout,
                        logins, ca, brokers=more).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=fleet.health_loop, args=(args.health_every,), daemon=True)]
    if args.tap_every:
        threads.append(threading.Thread(target=fleet.demo_taps, args=(args.tap_every,),
                                        daemon=True))
    where = ", ".join(f"{h}:{p}" for h, p in [(host, port), *more])
    print(f"{len(devices)} virtual reader(s) on {where}{' over TLS' if ca else ''}: "
          f"{', '.join(devices)}", flush=True)
    for t in threads:
        t.start()
    try:
        if args.taps:
            fleet.scripted_taps(args.taps, args.tap_interval, args.tap_log)
            while not stop.is_set() and any(r.depth for r in fleet.readers):
                stop.wait(0.1)
            if not args.stay:
                return 0
        started, said = time.monotonic(), 0
        while not stop.wait(0.5):
            # a broker that does not answer is said every 5 s, not waited on in silence
            waiting = sum(not r.connected.is_set() for r in fleet.readers)
            if waiting and time.monotonic() - started >= 2 + 5 * said:
                said += 1
                why = next((r.link_error for r in fleet.readers if r.link_error), "")
                print(f"waiting for the broker at {host}:{port}: {waiting} of "
                      f"{len(fleet.readers)} reader(s) not connected, retrying"
                      f"{f' ({why})' if why else ''}", file=sys.stderr, flush=True)
        return 0
    finally:
        fleet.stop()


def _run_wasm(args, devices: list[str], host: str, port: int,
              logins: dict[str, dict] | None) -> int:
    """The boxes of `--board wasm` (tools/sim/wasm.py): the firmware itself, so the
    CPython reader's options for taps and health do not apply."""
    from tools.sim.wasm import run_wasm
    from tools.up_broker import SIM_CONTROL, read_credentials

    unsupported = [opt for opt, on in (("--tap-every", args.tap_every), ("--taps", args.taps))
                   if on]
    if unsupported:
        raise TelegestError(f"{', '.join(unsupported)} drive the Python readers only; with "
                            "--board wasm tap with `telegest device tap DEVICE BADGE`")
    control = read_credentials(args.credentials).get(SIM_CONTROL) if args.credentials else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return run_wasm(devices, host, port, logins, control, stop,
                    say=lambda s: print(s, flush=True))


def send_tap(broker: str, device: str, badge: str, timeout: float = 5.0,
             login: dict | None = None) -> None:
    """Make a running virtual reader read a card, through its control topic; `login`: the
    `sim-control` client's, on a broker that enforces identities."""
    host, port = parse_broker(broker)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if login:
        c.username_pw_set(login["username"], login["password"])
    answered, answer = threading.Event(), []
    c.on_connect = lambda _c, _u, _f, rc, _p=None: (answer.append(rc), answered.set())
    try:
        c.connect(host, port, keepalive=10)
    except OSError as e:
        raise TelegestError(f"cannot reach the broker at {host}:{port}: {e}")
    c.loop_start()
    try:
        if not answered.wait(timeout):
            raise TelegestError(f"the broker at {host}:{port} did not answer the connection")
        if answer[0].is_failure:
            hint = "" if login else (": it wants a login (`telegest up` writes one: "
                                     "--credentials <data>/broker-credentials.json)")
            raise TelegestError(f"the broker at {host}:{port} refused the connection: "
                                f"{answer[0]}{hint}")
        info = c.publish(SIM_TAP_TOPIC.format(device=device), badge.encode(), qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TelegestError(f"the broker did not take the tap within {timeout}s")
    except (RuntimeError, ValueError) as e:
        raise TelegestError(f"the tap was not delivered to the broker: {e}")
    finally:
        c.disconnect()
        c.loop_stop()
