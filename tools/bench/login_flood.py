"""`telegest bench login-flood`: does the ingest keep its rate while bad logins hit the console?

In one run: a mosquitto on a free port, the ingest worker and the API (`telegest fleet api`),
each its own process, on one SQLite database. Two phases publish the same number of clock
events (one event per message, as live taps come) from two sets of devices: first alone, then
while `--rate` bad sign-ins per second hit `/login`, spread over `--addresses` source addresses
of 127.0.0.0/8 (an attacker with many addresses: a per-address lockout alone would not stop
it, so the cap on concurrent password hashes is what is measured). The ingest rate counts an
event once the fleet acked it. Prints one JSON object.
"""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tools.bench.ingest import AckWatcher, _child, _worker_ready, count_stored, register_devices
from tools.broker import Broker, free_port, wait_port
from tools.errors import TelegestError

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Flood:
    """`rate` bad sign-ins per second from `addresses` loopback addresses, until stopped."""

    def __init__(self, base: str, rate: int, addresses: int, threads: int = 16) -> None:
        self.base, self.rate = base, rate
        self.sources = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(addresses)]
        self.threads = threads
        self.stop = threading.Event()
        self.codes: Counter = Counter()
        self.sent = 0
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def start(self) -> "Flood":
        for n in range(self.threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def _run(self, n: int) -> None:
        mine = self.sources[n::self.threads] or self.sources[:1]
        clients = [httpx.Client(base_url=self.base, timeout=10, transport=httpx.HTTPTransport(
            local_address=src)) for src in mine]
        tokens: dict[int, str] = {}
        period = self.threads / self.rate  # each thread's share of the rate
        next_at = time.monotonic() + n * period / self.threads
        i = 0
        try:
            while not self.stop.is_set():
                k = i % len(clients)
                i += 1
                c = clients[k]
                try:
                    if k not in tokens:
                        tokens[k] = _CSRF.search(c.get("/login").text).group(1)
                    r = c.post("/login", data={"csrf": tokens[k], "email":
                                               f"guess{i}@agency.fr", "password": f"guess {i} !"})
                    found = _CSRF.search(r.text)
                    if found:
                        tokens[k] = found.group(1)
                    code = r.status_code
                    if code == 403:  # a stale sign-in form (its cookie expired): fetch a new one
                        tokens.pop(k, None)
                except (httpx.HTTPError, AttributeError):
                    code = "error"  # a timeout or a refused connection: counted apart
                with self._lock:
                    self.codes[code] += 1
                    self.sent += 1
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
        finally:
            for c in clients:
                c.close()

    def halt(self) -> None:
        self.stop.set()
        for t in self._workers:
            t.join(15)


def _phase(broker: Broker, work: Path, devices: list[str], per_device: int) -> float:
    """Publish, wait until every event is acked; events acked per second."""
    watcher = AckWatcher(broker.host, broker.port, {d: per_device for d in devices})
    try:
        pub = _child(["-m", "tools.bench.mqtt_load", "publish", "--port", str(broker.port),
                      "--devices", ",".join(devices), "--per-device", str(per_device),
                      "--per-message", "1"], stdout=subprocess.PIPE)
        out, _ = pub.communicate(timeout=600)
        t0 = json.loads(out)["t_start"]
        if not watcher.done.wait(600):
            raise TelegestError("the fleet did not ack every event within 600 s: see the "
                                f"worker's log in {work}")
        return len(devices) * per_device / (watcher.t_done - t0)
    finally:
        watcher.close()


def run_bench_login_flood(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="tg-bench-flood-"))
    db_url = f"sqlite:///{work / 'bench.db'}"
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, flush=True))
    per_device = max(1, args.events // args.devices)
    quiet = [f"quiet-{i:04d}" for i in range(args.devices)]
    flooded = [f"flood-{i:04d}" for i in range(args.devices)]
    register_devices(db_url, quiet + flooded)
    broker = Broker("mosquitto", workdir=work / "broker", purpose="bench").start()
    port = free_port()
    procs: list[subprocess.Popen] = []
    flood = None
    try:
        procs.append(_child(["-m", "tools.cli", "fleet", "worker", "--db", db_url, "--broker",
                             f"{broker.host}:{broker.port}"],
                            stdout=open(work / "worker0.log", "wb"), stderr=subprocess.STDOUT))
        procs.append(_child(["-m", "tools.cli", "fleet", "api", "--db", db_url, "--host",
                             "127.0.0.1", "--port", str(port)],
                            stdout=open(work / "api.log", "wb"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 30
        while not _worker_ready(work / "worker0.log"):
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise TelegestError(f"the worker did not start: see {work / 'worker0.log'}")
            time.sleep(0.1)
        if not wait_port("127.0.0.1", port, 30):
            raise TelegestError(f"the API did not start: see {work / 'api.log'}")
        say(f"bench login-flood: {per_device * args.devices} events per phase, "
            f"{args.rate} bad sign-ins/s from {args.addresses} addresses")
        alone = _phase(broker, work, quiet, per_device)
        say(f"  without the flood: {alone:.0f} events/s")
        flood = Flood(f"http://127.0.0.1:{port}", args.rate, args.addresses).start()
        time.sleep(2)  # let the flood reach its rate
        t0, sent0 = time.monotonic(), flood.sent
        during = _phase(broker, work, flooded, per_device)
        achieved = (flood.sent - sent0) / (time.monotonic() - t0)
        say(f"  during the flood: {during:.0f} events/s ({achieved:.0f} sign-ins/s sent)")
    finally:
        if flood is not None:
            flood.halt()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        broker.stop()
    rows, distinct = count_stored(db_url, "")
    expected = 2 * per_device * args.devices
    result = {"events_per_phase": per_device * args.devices,
              "ingest_events_per_s_alone": round(alone, 1),
              "ingest_events_per_s": round(during, 1),
              "ratio": round(during / alone, 3),
              "bad_logins_per_s": round(achieved, 1),
              "login_answers": {str(k): v for k, v in sorted(flood.codes.items(), key=str)},
              "lost": expected - distinct, "duplicated": rows - distinct}
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1
