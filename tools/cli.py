"""`telegest`: one command line for IT staff, technicians and developers.

A table of thin commands over library functions; a bad argument (tools/argtypes.py) or a
`TelegestError` becomes one clear `telegest:` line and exit code 2; anything else is a bug,
reported in one line with exit code 70 (-v shows the traceback). docs/technician.md lists the
exit codes.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from tools import argtypes as at
from tools.argtypes import EXIT_BUG, EXIT_INTERRUPTED, Parser
from tools.errors import TelegestError
from tools.waiting import Waiting

DEFAULT_DB = os.environ.get("TELEGEST_DATABASE_URL", "sqlite:///var/telegest.db")
DEFAULT_BROKER = "{}:{}".format(os.environ.get("TELEGEST_MQTT_HOST", "127.0.0.1"),
                                os.environ.get("TELEGEST_MQTT_PORT", "1883"))


# -- handlers: each one line or two over a library call ------------------------------------------
def cmd_up(args) -> int:
    from tools.up import run_up

    return run_up(args)


def cmd_cluster_up(args) -> int:
    from tools.cluster_up import run_cluster_up

    return run_cluster_up(args)


def cmd_fleet_worker(args) -> int:
    from fleet.worker import main as worker_main

    os.environ["TELEGEST_DATABASE_URL"] = args.db
    (host, port), *more = at.parse_brokers(args.broker)
    os.environ["TELEGEST_MQTT_HOST"], os.environ["TELEGEST_MQTT_PORT"] = host, str(port)
    if more:  # a cluster's other MQTT listeners, moved to when one fails
        os.environ["TELEGEST_MQTT_BROKERS"] = ",".join(f"{h}:{p}" for h, p in more)
    if args.nats:
        os.environ["TELEGEST_NATS_URLS"] = args.nats
    argv = ["--protocol", args.protocol] if args.protocol else []
    argv += ["--no-push"] if args.no_push else []
    # the worker reports its connections and counters at INFO unless told otherwise
    logging.getLogger().setLevel(os.environ.get("TELEGEST_LOG_LEVEL", "INFO").upper())
    return worker_main(argv) or 0


def cmd_fleet_api(args) -> int:
    import dataclasses

    import uvicorn

    from fleet.api.app import create_app
    from fleet.config import Settings

    _can_listen(args.host, args.port)
    os.environ["TELEGEST_DATABASE_URL"] = args.db
    settings = Settings()
    if not settings.public_url_configured:  # links to this very API, from this machine
        settings = dataclasses.replace(settings, public_url=f"http://127.0.0.1:{args.port}")
        print(f"TELEGEST_PUBLIC_URL is not set: enrolment links and e-mails point at "
              f"{settings.public_url}, which only this machine reaches; set it to the address "
              f"phones and people use (https://telegest.agence.fr)", file=sys.stderr)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_fleet_migrate(args) -> int:
    from fleet.db import migrate
    from fleet.service_role import ServiceRoleError, grant

    migrate(args.db)
    print(f"database at {_safe_url(args.db)} is up to date")
    if args.service_role:
        try:
            grant(args.db, args.service_role)
        except ServiceRoleError as e:
            raise TelegestError(str(e)) from None
        print(f"service role {args.service_role} may read and write the tables, append to "
              "the audit log, and change no schema")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_fleet_demo(args) -> int:
    from tools.up import seed

    info = seed(args.db, history=True)
    past = info["history"]
    print(f"demo agency ready: readers {', '.join(info['devices'])}; past two weeks: "
          f"{past['visits']} visits added, corrected {past['corrected'] or 'none'}, "
          f"{past['validated']} validated")
    return 0


def cmd_device_sim(args) -> int:
    from tools.sim.run import run_sim

    return run_sim(args)


def cmd_device_tap(args) -> int:
    from tools.sim.run import send_tap
    from tools.up_broker import SIM_CONTROL, read_credentials

    login = read_credentials(args.credentials)[SIM_CONTROL] if args.credentials else None
    with Waiting(f"waiting for the broker at {args.broker}", 5):
        send_tap(args.broker, args.device, args.badge, login=login)
    print(f"tap {args.badge} sent to {args.device}")
    return 0


def cmd_bench_ingest(args) -> int:
    from tools.bench.ingest import run_bench_ingest

    return run_bench_ingest(args)


def cmd_bench_firmware(args) -> int:
    from tools.bench.firmware import run_bench_firmware

    return run_bench_firmware(args)


def cmd_bench_push(args) -> int:
    from tools.bench.push import run_bench_push

    return run_bench_push(args)


def cmd_bench_login_flood(args) -> int:
    from tools.bench.login_flood import run_bench_login_flood

    return run_bench_login_flood(args)


def cmd_bench_fleet(args) -> int:
    from tools.bench.fleet import run_bench_fleet

    return run_bench_fleet(args)


def cmd_bench_nats_auth(args) -> int:
    from tools.bench.natsauth import run_bench_nats_auth

    return run_bench_nats_auth(args)


def cmd_bench_export(args) -> int:
    from tools.bench.export import run_bench_export

    return run_bench_export(args)


def _broker(url: str) -> tuple[str, int]:
    from tools.sim.run import parse_broker

    return parse_broker(url)


def _can_listen(host: str, port: int) -> None:
    """Bind once before starting the server, so a taken port is one line, not uvicorn's log."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise TelegestError(f"cannot listen on {host}: {e.strerror or e}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise TelegestError(f"cannot listen on {host}:{port}: {e.strerror or e} (another "
                                "server there? choose another --port)") from None


# -- the table -------------------------------------------------------------------------------------
_ranged_port0 = at._ranged(int, 0, 65535, "a TCP port from 1 to 65535, or 0 for any free one")
_sim_count = at._ranged(int, 0, 10_000, "from 0 to 10000 virtual readers")
_nodes = at._ranged(int, 1, 9, "from 1 to 9 NATS nodes")
_bench_devices = at._ranged(int, 1, 19_000, "from 1 to 19000 devices (one process's files)")
_workers = at._ranged(int, 1, 16, "from 1 to 16 workers")


def _idents(text: str) -> str:
    for one in text.split(","):
        at.ident(one.strip())
    return text


def _card_uid(text: str) -> str:
    """Hex bytes, as a PN532 reports a card (4, 7 or 10 bytes; the simulator takes 1 to 10)."""
    try:
        uid = bytes.fromhex(text)
    except ValueError:
        uid = b""
    if not 1 <= len(uid) <= 10:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a card UID: bytes in hex, e.g. 04A1B2C3D4E5F6")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="telegest", description="telegest: home-care clock-in system",
               epilog="exit codes: 0 done; 2 refused or failed, with a telegest: line saying "
                      "why; 70 a bug (please report it); 130 interrupted")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="area", required=True)

    def command(parent, name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        c = parent.add_parser(name, help=help, description=help)
        c.set_defaults(handler=handler)
        return c

    up = command(sub, "up", cmd_up, "run everything on one machine: database, broker, fleet, "
                 "API and a few virtual readers tapping (Ctrl-C stops it all)")
    up.add_argument("--data", default="var", type=at.folder,
                    help="folder for the database, logs and journals")
    up.add_argument("--port", type=at.port_number, default=8000, help="API port on localhost")
    up.add_argument("--mqtt-port", type=_ranged_port0, default=0,
                    help="the broker's plain port, on 127.0.0.1 only (default 1883, or a free "
                         "one if 1883 is taken)")
    up.add_argument("--mqtts-port", type=_ranged_port0, default=0,
                    help="the boxes' TLS port, on every address (default 8883, or a free one "
                         "if 8883 is taken; mosquitto only)")
    up.add_argument("--tls-name", action="append", type=at.host,
                    help="a host name or address the boxes dial, added to the broker's "
                         "certificate (repeat; localhost, 127.0.0.1 and this machine's name "
                         "are always in it)")
    up.add_argument("--broker", default="auto", choices=["auto", "mosquitto", "amqtt"])
    up.add_argument("--readers", type=at.count, default=5, help="virtual readers (0 for none)")
    up.add_argument("--tap-every", type=at.positive_seconds, default=8.0,
                    help="seconds between demo taps")
    up.add_argument("--readers-on", choices=["python", "wasm"], default="python",
                    help="python: the reader's logic on CPython, tapping by itself; wasm: the "
                         "real firmware on MicroPython (WebAssembly), tapped with `telegest "
                         "device tap` (docs/virtual-board.md)")
    up.add_argument("--for-seconds", type=at.seconds, default=0,
                    help="stop by itself after this long (0: until Ctrl-C)")

    cl = sub.add_parser("cluster", help="the fleet on a NATS cluster (docs/operations.md)"
                        ).add_subparsers(dest="cmd", required=True)
    cup = command(cl, "up", cmd_cluster_up, "run the fleet on a NATS cluster on this machine: "
                  "the nodes (JetStream, MQTT), the workers in NATS mode, the API and a few "
                  "virtual readers spread over the nodes (Ctrl-C stops it all)")
    cup.add_argument("--nodes", type=_nodes, default=3, help="NATS servers (default 3)")
    cup.add_argument("--database-url", type=at.database_url, default=None,
                     help="the fleet's database (default: SQLite in --data; PostgreSQL for "
                          "several workers under load)")
    cup.add_argument("--data", default="var-cluster", type=at.folder,
                     help="folder for the nodes, users, logs and journals")
    cup.add_argument("--port", type=at.port_number, default=8000, help="API port on localhost")
    cup.add_argument("--workers", type=_workers, default=2,
                     help="ingest workers sharing one JetStream consumer (default 2)")
    cup.add_argument("--readers", type=_sim_count, default=5,
                     help="virtual readers (0 for none)")
    cup.add_argument("--tap-every", type=at.positive_seconds, default=8.0,
                     help="seconds between demo taps")
    cup.add_argument("--for-seconds", type=at.seconds, default=0,
                     help="stop by itself after this long (0: until Ctrl-C)")

    fleet = sub.add_parser("fleet", help="the fleet service").add_subparsers(dest="cmd",
                                                                              required=True)
    w = command(fleet, "worker", cmd_fleet_worker, "run an MQTT ingest worker")
    w.add_argument("--db", default=DEFAULT_DB)
    w.add_argument("--broker", default=DEFAULT_BROKER, type=at.brokers,
                   help="host:port, or several separated by commas (a NATS cluster's MQTT "
                        "listeners, tried in turn)")
    w.add_argument("--protocol", choices=["v5", "v311"], default=None,
                   help="v5 with a shared subscription (default), v311 for a 3.1.1-only broker")
    w.add_argument("--nats", type=at.nats_urls, default=None,
                   help="nats://host:port,...: consume the up messages through JetStream on "
                        "this NATS cluster (TELEGEST_NATS_URLS; docs/operations.md)")
    w.add_argument("--no-push", action="store_true",
                   help="only ingest: never take the fleet duties (planning push, rollouts, "
                        "alert sweep) that one worker of the fleet holds by lease")
    a = command(fleet, "api", cmd_fleet_api, "serve the REST API")
    a.add_argument("--db", default=DEFAULT_DB)
    a.add_argument("--host", default="127.0.0.1", type=at.host)
    a.add_argument("--port", type=at.port_number, default=8000)
    m = command(fleet, "migrate", cmd_fleet_migrate, "create or upgrade the database schema")
    m.add_argument("--db", default=DEFAULT_DB, help="the owner role's URL on PostgreSQL")
    m.add_argument("--service-role", default=None, metavar="ROLE",
                   help="PostgreSQL: then grant ROLE (the API's and workers' login) the "
                        "service's rights, no DDL (docs/operations.md)")
    d = command(fleet, "demo", cmd_fleet_demo,
                "create the demo agency, today's planning and its past two weeks")
    d.add_argument("--db", default=DEFAULT_DB)
    from tools.apikeys import add_commands as add_apikey_commands

    add_apikey_commands(fleet, command)
    from tools.fleetops.cli import add_commands as add_fleet_device_commands

    add_fleet_device_commands(fleet, command)
    from tools.console_users import add_commands as add_fleet_user_commands

    add_fleet_user_commands(fleet, command)
    from tools.updates.cli import add_commands as add_update_commands

    add_update_commands(fleet, command)
    from tools.fleetops.records import add_commands as add_record_commands

    add_record_commands(fleet, command)
    from tools.fleetops.planning import add_commands as add_planning_commands

    add_planning_commands(fleet, command)
    from tools.pki import add_commands as add_pki_commands

    add_pki_commands(fleet, command)

    dev = sub.add_parser("device", help="devices: flash, deploy, console, virtual readers"
                         ).add_subparsers(
        dest="cmd", required=True)
    s = command(dev, "sim", cmd_device_sim, "run virtual reader boxes")
    s.add_argument("--broker", default=DEFAULT_BROKER, type=at.brokers,
                   help="host:port, or several separated by commas: a reader moves to the "
                        "next one when a connection fails")
    s.add_argument("--devices", type=_idents, help="comma-separated device ids")
    s.add_argument("--count", type=_sim_count, default=0, help="or: this many, named PREFIX1..N")
    s.add_argument("--prefix", default="sim-r")
    s.add_argument("--db", help="take each reader's planning and allow-list from this database")
    s.add_argument("--config", help="or from this JSON file")
    s.add_argument("--journal-dir", default="var/journals", type=at.folder,
                   help="one sub-folder per reader")
    s.add_argument("--tap-every", type=at.seconds, default=0, help="random demo taps every N s")
    s.add_argument("--taps", type=at.count, default=0,
                   help="scripted: tap until each journal holds N events, then wait for the acks")
    s.add_argument("--tap-interval", type=at.seconds, default=0.0)
    s.add_argument("--tap-log", help="append 'device seq feedback' per scripted tap")
    s.add_argument("--stay", action="store_true", help="keep running after scripted taps")
    s.add_argument("--ack-timeout", type=at.positive_seconds, default=5.0)
    s.add_argument("--health-every", type=at.positive_seconds, default=60.0)
    s.add_argument("--credentials", help="each reader's broker login, from this JSON file "
                   "(telegest up writes <data>/broker-credentials.json)")
    s.add_argument("--ca", help="the broker's CA certificate (PEM): the readers speak TLS and "
                   "verify the broker against it (telegest up: <data>/pki/ca.pem)")
    s.add_argument("--board", choices=["python", "wasm"], default="python",
                   help="python: the reader's logic on CPython (fast, many readers); wasm: the "
                        "real firmware on MicroPython (WebAssembly) with a simulated PN532, a "
                        "console per box (docs/virtual-board.md)")
    t = command(dev, "tap", cmd_device_tap, "make a running virtual reader read a card")
    t.add_argument("device", type=at.ident)
    t.add_argument("badge", type=_card_uid, help="card UID in hex, e.g. 04A1B2C3D4E5F6")
    t.add_argument("--broker", default=DEFAULT_BROKER, type=at.broker, help="host:port")
    t.add_argument("--credentials", help="log in as sim-control, from this JSON file "
                   "(telegest up writes <data>/broker-credentials.json)")

    badge = sub.add_parser("badge", help="badges: write, read, print").add_subparsers(
        dest="cmd", required=True)
    from tools.field.cli import add_commands as add_field_commands

    add_field_commands(dev, badge, command)
    from tools.field.sun_cli import add_commands as add_sun_commands

    add_sun_commands(badge, command)

    from tools.export import add_commands as add_export_commands

    add_export_commands(sub, command)

    bench = sub.add_parser("bench", help="benchmarks printing JSON").add_subparsers(
        dest="cmd", required=True)
    b = command(bench, "ingest", cmd_bench_ingest,
                "clock events through a real mosquitto into the database, against raw paho")
    b.add_argument("--json", action="store_true", help="print only the JSON result")
    b.add_argument("--events", type=at.positive_int, default=40000)
    b.add_argument("--devices", type=at.positive_int, default=20)
    b.add_argument("--per-message", type=at.positive_int, default=1,
                   help="events per MQTT message: 1 as readers send live taps, up to 8 as they "
                        "flush a backlog after an outage")
    b.add_argument("--workers", type=at.positive_int, default=1, help="ingest worker processes")
    b.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    f = command(bench, "firmware", cmd_bench_firmware,
                "the reader's logic on real MicroPython: heap, time per tap, .mpy size")
    f.add_argument("--json", action="store_true", help="print only the JSON result")
    f.add_argument("--taps", type=at.positive_int, default=10000)
    f.add_argument("--warmup", type=at.count, default=1000)
    f.add_argument("--feedback-taps", type=at.positive_int, default=200,
                   help="taps per network mode for tap_feedback_ms_p99")
    bf = command(bench, "fleet", cmd_bench_fleet,
                 "N devices connected to a real mosquitto or NATS cluster sending health and "
                 "taps to the fleet workers: health rate, backlog, planning push, "
                 "tap-to-stored p99")
    bf.add_argument("--json", action="store_true", help="print only the JSON result")
    bf.add_argument("--devices", type=at.positive_int, default=10000)
    bf.add_argument("--health-every", type=at.positive_seconds, default=60.0,
                    help="seconds per device")
    bf.add_argument("--seconds", type=at.positive_seconds, default=120.0,
                    help="the measured window")
    bf.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    bf.add_argument("--broker", choices=["mosquitto", "cluster"], default="mosquitto",
                    help="one mosquitto, or a NATS cluster (--nodes servers, workers in NATS "
                         "mode)")
    bf.add_argument("--nodes", type=at.positive_int, default=3, help="NATS servers (cluster)")
    bf.add_argument("--workers", type=at.positive_int, default=1,
                    help="fleet worker processes")
    bf.add_argument("--per-process", type=at.positive_int, default=5000,
                    help="virtual devices per load process (each under the file limit)")
    bf.add_argument("--per-address", type=at.count, default=200,
                    help="devices per loopback source address (0: no bind, the kernel's)")
    bf.add_argument("--connect-rate", type=at.positive_int, default=1500,
                    help="new connections per second, all load processes together")
    bf.add_argument("--attempts", type=at.positive_int, default=3,
                    help="connect attempts per device before it gives up")
    bf.add_argument("--sub-qos", type=int, choices=[0, 1], default=None,
                    help="the devices' subscription QoS (default: 1 on mosquitto as the "
                         "firmware, 0 on the cluster: docs/scaling.md)")
    bf.add_argument("--broker-file-limit", type=at.positive_int, default=None,
                    help="lower the broker processes' file limit (as a smaller machine)")
    bf.add_argument("--keep", action="store_true",
                    help="keep the run's folder (the nodes' logs) even when it succeeds; "
                         "its path is in the JSON (`workdir`)")
    be = command(bench, "export", cmd_bench_export,
                 "an agency's year of visits through the ESPPADOM, payroll and billing "
                 "exports, each streamed to a file in its own process: seconds, peak RSS")
    be.add_argument("--json", action="store_true", help="print only the JSON result")
    be.add_argument("--visits", type=int, default=100000)
    pb = command(bench, "push", cmd_bench_push,
                 "push a new planning to N devices through a real mosquitto")
    pb.add_argument("--json", action="store_true", help="print only the JSON result")
    pb.add_argument("--devices", type=at.positive_int, default=10000)
    pb.add_argument("--visits", type=at.positive_int, default=4, help="visits per home per day")
    pb.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    na = command(bench, "nats-auth", cmd_bench_nats_auth,
                 "the NATS cluster's per-device users: logins' CPU, a reload and a block with "
                 "every device connected, the traffic's stall during the reload")
    na.add_argument("--json", action="store_true", help="print only the JSON result")
    na.add_argument("--devices", type=_bench_devices, default=2000)
    na.add_argument("--nodes", type=_nodes, default=3)
    na.add_argument("--cost", type=at._ranged(int, 4, 16, "a bcrypt cost from 4 to 16"),
                    default=4)
    na.add_argument("--connect-batch", type=at.positive_int, default=500,
                    help="CONNECTs sent before their CONNACKs are read")
    lf = command(bench, "login-flood", cmd_bench_login_flood,
                 "ingest rate with and without a flood of bad console sign-ins (ratio)")
    lf.add_argument("--json", action="store_true", help="print only the JSON result")
    lf.add_argument("--events", type=at.positive_int, default=20000,
                    help="clock events per phase")
    lf.add_argument("--devices", type=at.positive_int, default=20)
    lf.add_argument("--rate", type=at.positive_int, default=200, help="bad sign-ins per second")
    lf.add_argument("--addresses", type=at.positive_int, default=200,
                    help="source addresses of 127.0.0.0/8 the flood comes from")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0), or a bad argument already said in one line (2)
        return e.code if isinstance(e.code, int) else EXIT_BUG
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.handler(args) or 0)
    except TelegestError as e:
        print(f"telegest: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the last net: one line, not a traceback
        if type(e).__name__ == "SettingsError":  # fleet.config: the message names the variable
            print(f"telegest: {e}", file=sys.stderr)
            return TelegestError.exit_code
        known = _known_failure(e, args)
        if known:
            print(f"telegest: {known}", file=sys.stderr)
            return TelegestError.exit_code
        if args.verbose:
            logging.exception("unexpected error")
        print(f"telegest: unexpected error ({type(e).__name__}: {e}); this is a bug: please "
              "report it with the command you ran (-v shows where it happened)", file=sys.stderr)
        return EXIT_BUG


def _known_failure(e: Exception, args) -> str | None:
    """What a failure outside our code means, when it is the place given on the command line
    (a database that cannot be opened)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from fleet.db import SchemaNotReady

    if isinstance(e, SchemaNotReady):
        return str(e)
    db = getattr(args, "db", None)
    if db and isinstance(e, (OperationalError, DBAPIError)):
        first = str(e.orig or e).strip().splitlines()[0] if str(e.orig or e).strip() else ""
        return (f"cannot use the database {_safe_url(db)}: {first} (is it running, and is the URL "
                "right? `telegest fleet migrate --db URL` creates the schema)")
    return None


if __name__ == "__main__":
    sys.exit(main())
