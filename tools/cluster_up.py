"""`telegest cluster up`: the fleet on a NATS cluster, on one machine.

Like `telegest up` (tools/up.py) with the clustered broker instead of one Mosquitto: N
nats-server nodes (tools/cluster.py) with JetStream and an MQTT listener each, the users and
permissions of fleet.natsauth (one login per process and per reader, a block is a reload),
`--workers` ingest workers in NATS mode (the up messages through one durable JetStream
consumer, fleet.nats_transport), the API, and a few virtual readers spread over the nodes'
MQTT listeners, each moving to the next node when its own fails. The database is SQLite in
the data folder unless `--database-url` names one (PostgreSQL for several workers under load).

Everything is rebuilt at every start, as `telegest up` does: new passwords, the demo readers
provisioned again from the database (those the fleet blocked, wiped or retired get no login).
Every password goes to <data>/broker-credentials.json (0600), the file `telegest device sim`
and `telegest device tap` read with `--credentials`. A part that dies is started again with
backoff (tools.up.Supervisor), a node included.
"""
from __future__ import annotations

from pathlib import Path

from fleet.brokerauth import new_password
from tools.broker import port_free, wait_port
from tools.cluster import Cluster, ClusterError
from tools.errors import TelegestError
from tools.up import Children, Supervisor, admin_key, fleet_env, seed, stop_on_signals, supervise
from tools.up_broker import CREDENTIALS, SIM_CONTROL, login, provision_readers, write_credentials


class _Nodes:
    """The cluster as tools.up.Supervisor sees a broker: down when a node is down (its exit
    code in `.proc`), and `start()` starts the nodes that are down again."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @property
    def running(self) -> bool:
        return all(self.cluster.running)

    @property
    def proc(self):
        return next((n.proc for n in self.cluster.nodes if not n.running), None)

    @proc.setter
    def proc(self, _value) -> None:
        pass  # the supervisor forgets a dead process; the node keeps its own record

    def start(self) -> None:
        for node in self.cluster.nodes:
            if not node.running:
                try:
                    self.cluster.restart(node.index)
                except ClusterError as e:
                    from tools.broker import BrokerError

                    raise BrokerError(str(e)) from None


def admit(auth, db_url: str, devices: list[str]) -> tuple[dict, dict[str, str]]:
    """Provision the demo readers the fleet admits, in one reload; their logins, and the
    readers refused with their status."""
    from fleet.brokerauth import BrokerAuthError
    from fleet.lifecycle import LifecycleError

    try:
        with auth.batch():
            return provision_readers(db_url, devices, auth, "telegest cluster up")
    except (BrokerAuthError, LifecycleError) as e:
        raise TelegestError(f"cannot set up the cluster's identities: {e}") from None


def run_cluster_up(args) -> int:
    from fleet.natsauth import NatsAuth, NatsAuthSettings

    data = Path(args.data).resolve()
    (data / "logs").mkdir(parents=True, exist_ok=True)
    db_url = args.database_url or f"sqlite:///{data / 'telegest.db'}"
    if not port_free("127.0.0.1", args.port):
        raise TelegestError(f"port {args.port} is taken on localhost: stop what uses it or "
                            f"pass --port")
    print(f"telegest cluster up: {args.nodes} NATS node{'s' if args.nodes > 1 else ''}, data in "
          f"{data}", flush=True)
    info = seed(db_url)
    admin_key(db_url, data / "api-key.txt")

    cluster = Cluster(args.nodes, workdir=data / "nats")
    settings = NatsAuthSettings(data / "nats" / "nats-users.conf",
                                tuple(cluster.pid_files), tuple(cluster.monitor_urls))
    auth = NatsAuth(settings)
    admin, worker = ("fleet-admin", new_password()), ("fleet-worker", new_password())
    sim = (SIM_CONTROL, new_password())
    # rebuilt at every start: the database says who is admitted (tools/up_broker.py says why)
    for path in (auth.path, auth.store):
        path.unlink(missing_ok=True)
    auth.init(admin, worker, sim_control=sim)
    cluster.auth_file, cluster.probe_login = auth.path.resolve(), worker
    creds_file = data / CREDENTIALS
    creds_file.unlink(missing_ok=True)
    try:
        cluster.start()
    except ClusterError as e:
        raise TelegestError(str(e)) from None
    mqtt = ",".join(f"{h}:{p}" for h, p in cluster.mqtt_addresses)
    nats = ",".join(cluster.nats_urls)
    children = Children(data / "logs")
    stop = stop_on_signals()
    try:
        logins, refused = admit(auth, db_url, info["devices"][: args.readers])
        write_credentials(creds_file, {"broker": mqtt, "nats": nats, "admin": login(*admin),
                                       "worker": login(*worker), SIM_CONTROL: login(*sim),
                                       "devices": logins})
        env = fleet_env(db_url, args.port)
        worker_env = {"TELEGEST_MQTT_USERNAME": worker[0], "TELEGEST_MQTT_PASSWORD": worker[1],
                      # not inherited from the shell: this API drives the cluster's users
                      "TELEGEST_DYNSEC_USERNAME": ""}
        api_env = {"TELEGEST_NATS_AUTH_FILE": str(auth.path),
                   "TELEGEST_NATS_PID_FILES": ",".join(map(str, cluster.pid_files)),
                   "TELEGEST_NATS_MONITOR_URLS": ",".join(cluster.monitor_urls),
                   "TELEGEST_DYNSEC_USERNAME": "",
                   "TELEGEST_MQTT_HOST": cluster.host,
                   "TELEGEST_MQTT_PORT": str(cluster.nodes[0].mqtt_port)}
        for i in range(args.workers):
            # each worker starts on its own node's MQTT listener (the others follow in turn)
            order = cluster.mqtt_addresses[i % args.nodes:] + cluster.mqtt_addresses[:i % args.nodes]
            children.start(f"worker-{i + 1}", [
                "tools.cli", "fleet", "worker", "--db", db_url, "--protocol", "v311",
                "--broker", ",".join(f"{h}:{p}" for h, p in order), "--nats", nats],
                {**env, **worker_env})
        children.start("api", ["tools.cli", "fleet", "api", "--db", db_url,
                               "--port", str(args.port)], {**env, **api_env})
        if not wait_port("127.0.0.1", args.port, 60):
            raise TelegestError(f"the API did not start: see {data / 'logs' / 'api.log'}")
        readers = list(logins)
        if readers:
            children.start("readers", [
                "tools.cli", "device", "sim", "--broker", mqtt, "--db", db_url,
                "--devices", ",".join(readers), "--journal-dir", str(data / "journals"),
                "--tap-every", str(args.tap_every), "--health-every", "30",
                "--credentials", str(creds_file)], env)
        _banner(data, args, cluster, creds_file, readers, refused)
        supervise(Supervisor(children, _Nodes(cluster), data / "logs"), stop, args.for_seconds)
        return 0
    finally:
        children.stop()
        cluster.stop()
        print("stopped.", flush=True)


def _banner(data: Path, args, cluster: Cluster, creds_file: Path, readers: list[str],
            refused: dict[str, str]) -> None:
    mqtt = ", ".join(f"{h}:{p}" for h, p in cluster.mqtt_addresses)
    print(f"  nodes    {args.nodes} nats-server ({', '.join(n.name for n in cluster.nodes)}), "
          f"JetStream replicas {cluster.replicas}; folders in {cluster.workdir}")
    print(f"  MQTT     {mqtt} (3.1.1; one login per process and reader)")
    print(f"  NATS     {', '.join(cluster.nats_urls)}")
    print(f"  users    {cluster.auth_file} (fleet.natsauth; a block reloads every node)\n"
          f"           credentials in {creds_file}")
    print(f"  workers  {args.workers}, in NATS mode (one durable JetStream consumer)")
    print(f"  API      http://127.0.0.1:{args.port}/docs   (key in {data / 'api-key.txt'})")
    print(f"  board    http://127.0.0.1:{args.port}/board")
    first = readers[0] if readers else "demo-r1"
    print(f"  readers  {', '.join(readers) or 'none'}\n           tap one: telegest device tap "
          f"{first} <badge> --broker {cluster.host}:{cluster.nodes[0].mqtt_port} "
          f"--credentials {creds_file}")
    if refused:
        print(f"  refused  {', '.join(f'{d} ({s})' for d, s in refused.items())}: not started, "
              f"the fleet refuses it")
    print(f"  logs     {data / 'logs'}, nodes' logs in {cluster.workdir}/node*/nats.log")
    print("Ctrl-C stops everything.", flush=True)
