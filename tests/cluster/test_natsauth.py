"""fleet.natsauth: the NATS cluster enforces device identities from the fleet's authorization
file. A device may publish only its own up/state subjects and subscribe only its own down
ones (QoS 1 included: nats-server's `$MQTT.sub.>` delivery subjects); a block is a reload
that disconnects the device, which then cannot log in again; through the fleet's API too."""
from __future__ import annotations

import json
import os
import stat
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleet.brokerauth import BrokerAuthError, control_from_env, new_password
from fleet.natsauth import NatsAuth, NatsAuthSettings, render
from tests.helpers import wait_until
from tools.cluster import Cluster, mqtt_probe

ADMIN = ("fleet-admin", new_password())
WORKER = ("fleet-worker", new_password())


def make_auth(tmp_path, cluster: Cluster | None = None) -> NatsAuth:
    settings = NatsAuthSettings(tmp_path / "auth" / "nats-users.conf",
                                tuple(cluster.pid_files) if cluster else (),
                                tuple(cluster.monitor_urls) if cluster else ())
    return NatsAuth(settings)


# -- the files (no server) ---------------------------------------------------------------------
def test_the_files_hold_hashes_only_and_each_device_its_own_subjects(tmp_path):
    auth = make_auth(tmp_path)
    auth.init(ADMIN, WORKER)
    auth.provision("r-1", "pw-of-r-1-" + "x" * 30)
    auth.stage("r-1", "r-1.2", "pw-staged-" + "y" * 30)
    for path in (auth.path, auth.store):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert "pw-of-r-1" not in path.read_text() and ADMIN[1] not in path.read_text()
    users = auth.users()
    assert users["r-1"]["hash"].startswith("$2b$04$") and users["r-1"]["enabled"]
    assert users["r-1.2"]["enabled"] is False  # staged: in the servers' file, locked
    text = auth.path.read_text()
    staged = next(x for x in text.splitlines() if '"user": "r-1.2"' in x)
    assert users["r-1.2"]["lock"] in staged and users["r-1.2"]["hash"] not in staged
    line = next(x for x in text.splitlines() if '"user": "r-1"' in x)
    assert ('"publish": {"allow": ["tg.v1.r-1.up.>", "tg.v1.r-1.state"]}' in line
            and '"subscribe": {"allow": ["tg.v1.r-1.down", "tg.v1.r-1.down.>", "$MQTT.sub.>"]}'
            in line and '"allowed_connection_types": ["MQTT"]' in line)
    admin_line = next(x for x in text.splitlines() if '"user": "fleet-admin"' in x)
    assert "permissions" not in admin_line  # the operator's login: everything
    auth.confirm("r-1.2", "r-1")
    users = auth.users()
    assert users["r-1.2"]["enabled"] and not users["r-1"]["enabled"] and not users["r-1"]["hash"]
    auth.delete("r-1")
    assert not any(u.get("enabled") for n, u in auth.users().items() if n.startswith("r-1"))
    text = auth.path.read_text()
    assert all(auth.users()[n]["lock"] in text for n in ("r-1", "r-1.2"))
    with pytest.raises(BrokerAuthError, match="abandoned, not staged"):
        auth.confirm("r-1.2", None)
    assert "stray" not in render({"stray": {"hash": "$2b$04$x", "enabled": True}})


def test_bad_input_is_refused_clearly(tmp_path, monkeypatch):
    auth = make_auth(tmp_path)
    auth.init(ADMIN, WORKER)
    for ident in ("a.b", "a b", "a>", "*", "", "x" * 65):
        with pytest.raises(BrokerAuthError, match="NATS subject token"):
            auth.provision(ident, "pw")
    with pytest.raises(BrokerAuthError, match="not a login slot"):
        auth.stage("r-1", "r-2", "pw")
    with pytest.raises(BrokerAuthError, match="no staged NATS login"):
        auth.confirm("r-9.2", "r-9")
    with pytest.raises(BrokerAuthError, match="fleet service login"):
        auth.disable("fleet-worker")
    auth.store.write_text("{not json")
    with pytest.raises(BrokerAuthError, match="cannot read the NATS users store"):
        auth.provision("r-1", "pw")
    monkeypatch.setenv("TELEGEST_NATS_AUTH_FILE", str(tmp_path / "a.conf"))
    monkeypatch.setenv("TELEGEST_NATS_BCRYPT_COST", "3")
    with pytest.raises(BrokerAuthError, match="4 to 16"):
        control_from_env()
    monkeypatch.setenv("TELEGEST_NATS_BCRYPT_COST", "6")
    monkeypatch.setenv("TELEGEST_NATS_PID_FILES", "/x/a.pid, /x/b.pid")
    control = control_from_env()
    assert isinstance(control, NatsAuth) and control.settings.cost == 6
    assert [str(p) for p in control.settings.pid_files] == ["/x/a.pid", "/x/b.pid"]
    with pytest.raises(BrokerAuthError, match="is the cluster running"):
        control.provision("r-1", "pw")  # written, but no node to reload


# -- on a real cluster -------------------------------------------------------------------------
class Device:
    """A device's MQTT 3.1.1 connection: what it receives, its SUBACKs, its disconnection."""

    def __init__(self, address, username: str, password: str, client_id: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.subacks: list[bool] = []
        self.connected, self.dropped = threading.Event(), threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv311, clean_session=False)
        self.c.username_pw_set(username, password)
        self.c.on_connect = lambda _c, _u, _f, rc, _p: (
            None if rc.is_failure else self.connected.set())
        self.c.on_disconnect = lambda *_a: (self.connected.clear(), self.dropped.set())
        self.c.on_message = lambda _c, _u, m: self.got.append((m.topic, bytes(m.payload)))
        self.c.on_subscribe = lambda _c, _u, _m, codes, _p: self.subacks.append(
            not codes[0].is_failure)
        self.c.connect(*address, keepalive=10)
        self.c.loop_start()
        wait_until(self.connected.is_set, 30, what=f"{username} connected")

    def subscribe(self, topic: str) -> bool:
        n = len(self.subacks)
        self.c.subscribe(topic, qos=1)
        wait_until(lambda: len(self.subacks) > n, 15, what=f"SUBACK for {topic}")
        return self.subacks[n]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def secured(tmp_path):
    """Three nodes including the fleet's authorization file; (cluster, NatsAuth)."""
    auth = make_auth(tmp_path)
    auth.init(ADMIN, WORKER)
    cluster = Cluster(3, workdir=tmp_path / "cluster", auth_file=auth.path, probe_login=WORKER)
    auth = make_auth(tmp_path, cluster)
    try:
        cluster.start()
        yield cluster, auth
    finally:
        cluster.stop()




@pytest.mark.cluster
@pytest.mark.xdist_group("processes")
def test_each_device_reaches_only_its_own_subjects(secured):
    cluster, auth = secured
    pw1, pw2 = new_password(), new_password()
    with auth.batch():  # two changes, one reload
        auth.provision("r-1", pw1)
        auth.provision("r-2", pw2)
    assert mqtt_probe(*cluster.mqtt_addresses[0], ("r-1", pw1)) == 0
    assert mqtt_probe(*cluster.mqtt_addresses[0], ("r-1", pw2)) == 5
    assert mqtt_probe(*cluster.mqtt_addresses[0], None) == 5  # nobody anonymous

    fleet = Device(cluster.mqtt_addresses[0], *WORKER, "fleet")
    assert fleet.subscribe("tg/v1/+/up/#") and fleet.subscribe("tg/v1/+/state")
    fleet.c.publish("tg/v1/r-1/down/config", b'{"v":1}', qos=1, retain=True).wait_for_publish(10)
    d1 = Device(cluster.mqtt_addresses[1], "r-1", pw1, "r-1")
    d2 = Device(cluster.mqtt_addresses[2], "r-2", pw2, "r-2")
    assert d1.subscribe("tg/v1/r-1/down/#")  # QoS 1 through JetStream, retained config first
    wait_until(lambda: ("tg/v1/r-1/down/config", b'{"v":1}') in d1.got, 15, what="config")
    # none of another device's, nor nats-server's delivery subjects through MQTT
    assert not d2.subscribe("tg/v1/r-1/down/#")
    assert not d2.subscribe("tg/v1/+/down/#")
    assert not d2.subscribe("$MQTT/sub/#")
    assert not d2.subscribe("#")
    d1.c.publish("tg/v1/r-1/up/clock", b"ev-1", qos=1).wait_for_publish(10)
    d1.c.publish("tg/v1/r-1/state", b"online", qos=1).wait_for_publish(10)
    d2.c.publish("tg/v1/r-1/up/clock", b"forged", qos=1)  # refused by the server
    d2.c.publish("tg/v1/r-2/up/clock", b"ev-2", qos=1).wait_for_publish(10)
    wait_until(lambda: len(fleet.got) >= 3, 15, what="the devices' events at the fleet")
    fleet.c.publish("tg/v1/r-1/down/ack", b'{"seq":1}', qos=1).wait_for_publish(10)
    wait_until(lambda: ("tg/v1/r-1/down/ack", b'{"seq":1}') in d1.got, 15, what="the ack")
    assert sorted(fleet.got) == [("tg/v1/r-1/state", b"online"), ("tg/v1/r-1/up/clock", b"ev-1"),
                                 ("tg/v1/r-2/up/clock", b"ev-2")]
    assert not any(t.startswith("tg/v1/r-1") for t, _ in d2.got)
    for c in (fleet, d1, d2):
        c.close()


@pytest.mark.cluster
@pytest.mark.xdist_group("processes")
def test_a_block_disconnects_the_device_and_it_cannot_come_back(secured):
    cluster, auth = secured
    pw = new_password()
    auth.provision("r-1", pw)
    other = new_password()
    auth.provision("r-2", other)
    d1 = Device(cluster.mqtt_addresses[1], "r-1", pw, "r-1")
    d2 = Device(cluster.mqtt_addresses[2], "r-2", other, "r-2")
    d1.c.reconnect_delay_set(0.2, 1)
    # as every box does: its state retained (nats-server keeps who published it, and at a
    # reload drops a retained message whose publisher lost the right to publish it; 2.9.10
    # crashed doing so: a blocked login stays in the file, locked, with its permissions)
    for d, ident in ((d1, "r-1"), (d2, "r-2")):
        d.c.publish(f"tg/v1/{ident}/state", b"online", qos=1, retain=True).wait_for_publish(10)
    auth.disable("r-1")  # returns once every node has reloaded
    wait_until(d1.dropped.is_set, 10, what="the blocked device disconnected")
    for addr in cluster.mqtt_addresses:
        assert mqtt_probe(*addr, ("r-1", pw)) == 5
    assert d2.connected.is_set() and not d2.dropped.is_set()  # the others stay
    assert cluster.running == [True, True, True]
    d1.close()
    # a node that was down while the device was blocked refuses it too when it comes back
    cluster.kill(0)
    auth.delete("r-2")
    cluster.probe_login = WORKER
    cluster.restart(0)
    assert mqtt_probe(*cluster.mqtt_addresses[0], ("r-2", other)) == 5
    wait_until(d2.dropped.is_set, 10, what="the retired device disconnected")
    assert cluster.running == [True, True, True]
    d2.close()


@pytest.mark.cluster
@pytest.mark.xdist_group("processes")
def test_the_fleet_api_blocks_a_device_on_the_cluster(secured, demo, monkeypatch):
    from tests.fleetops.conftest import as_role, make_api

    cluster, auth = secured
    db_url, _ = demo
    monkeypatch.setenv("TELEGEST_NATS_AUTH_FILE", str(auth.path))
    monkeypatch.setenv("TELEGEST_NATS_PID_FILES", ",".join(map(str, cluster.pid_files)))
    monkeypatch.setenv("TELEGEST_NATS_MONITOR_URLS", ",".join(cluster.monitor_urls))
    api = make_api(db_url, control_from_env())
    creds = api.post("/api/v1/devices/demo-r1/provision",
                     headers=as_role(api, "technician")).json()
    assert creds["broker_enforced"] is True
    box = Device(cluster.mqtt_addresses[2], creds["username"], creds["password"], "demo-r1")
    r = api.post("/api/v1/devices/demo-r1/block", json={"reason": "box stolen"})
    assert r.status_code == 200, r.text
    wait_until(box.dropped.is_set, 10, what="the blocked box disconnected")
    assert mqtt_probe(*cluster.mqtt_addresses[2], (creds["username"], creds["password"])) == 5
    box.close()
    stored = json.loads(auth.store.read_text())["users"]
    assert stored["demo-r1"]["enabled"] is False
