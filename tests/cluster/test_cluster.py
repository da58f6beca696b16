"""tools.cluster: three real nats-servers as one cluster with JetStream and MQTT listeners;
MQTT 3.1.1 clients on different nodes reach each other, retained messages and sessions live
in streams replicated to 3, a SIGKILLed node comes back, a reload is waited for."""
from __future__ import annotations

import pytest

from tests.cluster.conftest import Client
from tests.helpers import wait_until
from tools.broker import port_free
from tools.cluster import Cluster, ClusterError, mqtt_probe

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("processes")]


def _probe(address, login) -> int | None:
    try:
        return mqtt_probe(*address, login)
    except OSError:
        return None


def test_three_nodes_one_cluster_with_jetstream_and_mqtt(cluster):
    assert len(cluster.mqtt_addresses) == 3 and len(set(cluster.mqtt_addresses)) == 3
    assert all(u.startswith("nats://127.0.0.1:") for u in cluster.nats_urls)
    leaders = {cluster.meta_leader(i) for i in range(3)}
    assert len(leaders) == 1 and leaders <= {"tg-0", "tg-1", "tg-2"}
    for i in range(3):
        assert cluster.monitor(i, "jsz")["meta_cluster"]["cluster_size"] == 3
        assert len(cluster.monitor(i, "routez")["routes"]) >= 2

    # a device on node 0 receives what the fleet publishes on node 2, and a retained config
    # published on node 1 reaches a device that subscribes later on node 2
    dev = Client(cluster.mqtt_addresses[0], "dev-a")
    fleet = Client(cluster.mqtt_addresses[2], "fleet")
    wait_until(lambda: dev.connected.is_set() and fleet.connected.is_set(), 15, what="connect")
    dev.c.subscribe("tg/v1/dev-a/down/#", qos=1)
    wait_until(lambda: fleet.c.publish("tg/v1/dev-a/down/ack", b'{"seq":1}', qos=1)
               and dev.received, 15, interval=0.5, what="the ack across nodes")
    assert dev.received[0][:2] == ("tg/v1/dev-a/down/ack", b'{"seq":1}')
    cfg = Client(cluster.mqtt_addresses[1], "fleet-cfg")
    wait_until(cfg.connected.is_set, 15, what="connect")
    cfg.c.publish("tg/v1/dev-b/down/config", b'{"v":7}', qos=1, retain=True).wait_for_publish(10)
    late = Client(cluster.mqtt_addresses[2], "dev-b")
    wait_until(late.connected.is_set, 15, what="connect")
    late.c.subscribe("tg/v1/dev-b/down/#", qos=1)
    wait_until(lambda: late.received, 15, what="the retained config")
    assert late.received[0] == ("tg/v1/dev-b/down/config", b'{"v":7}', True)

    # NATS keeps MQTT's sessions and retained messages in streams, each on all 3 nodes
    streams = {s["name"]: s for s in cluster.monitor(0, "jsz?streams=true&config=true")
               ["account_details"][0]["stream_detail"]}
    for name in ("$MQTT_sess", "$MQTT_rmsgs", "$MQTT_msgs"):
        assert streams[name]["config"]["num_replicas"] == 3, name
    for c in (dev, fleet, cfg, late):
        c.close()


def test_a_killed_node_comes_back_and_the_others_keep_serving(cluster):
    pub = Client(cluster.mqtt_addresses[0], "fleet")
    wait_until(pub.connected.is_set, 15, what="connect")
    pub.c.publish("tg/v1/dev-k/down/config", b'{"v":1}', qos=1, retain=True).wait_for_publish(10)
    pid = cluster.nodes[1].proc.pid
    cluster.kill(1)
    assert cluster.running == [True, False, True]
    # the other two still form a quorum: a leader, and MQTT works there
    wait_until(lambda: cluster.meta_leader(0) not in (None, "tg-1"), 30, what="a new leader")
    dev = Client(cluster.mqtt_addresses[2], "dev-k")
    wait_until(dev.connected.is_set, 60, what="connect to a surviving node")
    dev.subscribe("tg/v1/dev-k/down/#")
    wait_until(lambda: dev.received, 60, what="the retained config from the survivors")
    dev.close()

    cluster.restart(1)
    assert cluster.running == [True, True, True] and cluster.nodes[1].proc.pid != pid
    assert cluster.meta_leader(1) is not None
    back = Client(cluster.mqtt_addresses[1], "dev-k2")
    wait_until(back.connected.is_set, 15, what="connect to the restarted node")
    back.subscribe("tg/v1/dev-k/down/#")
    wait_until(lambda: back.received, 15, what="the retained config on the restarted node")
    assert back.received[0] == ("tg/v1/dev-k/down/config", b'{"v":1}', True)
    back.close()
    pub.close()


def test_reload_waits_for_every_node_and_refuses_a_bad_file(tmp_path):
    auth = tmp_path / "auth.conf"
    auth.write_text('authorization { users: [ {user: "a", password: "secret-password-1"} ] }\n')
    c = Cluster(3, workdir=tmp_path / "cluster", auth_file=auth,
                probe_login=("a", "secret-password-1")).start()
    try:
        before = [c.monitor(i)["config_load_time"] for i in range(3)]
        c.reload()
        assert all(c.monitor(i)["config_load_time"] != before[i] for i in range(3))
        # a node that is down is skipped, and loads the file when it starts again
        c.kill(2)
        auth.write_text('authorization { users: [ {user: "a", password: "secret-password-2"} ] }\n')
        c.reload()
        for i in (0, 1):  # in force when reload() returns
            assert mqtt_probe(*c.mqtt_addresses[i], ("a", "secret-password-1")) == 5
            # accepted once JetStream has new leaders for what node 2 led (until then the
            # node closes an accepted login it cannot make a session for)
            wait_until(lambda: _probe(c.mqtt_addresses[i], ("a", "secret-password-2")) == 0,
                       60, interval=0.5, what="the new password accepted")
        with pytest.raises(ClusterError, match="refused the readiness probe"):
            c.restart(2)  # the probe's login is the old one
        c.probe_login = ("a", "secret-password-2")
        c.restart(2)
        assert mqtt_probe(*c.mqtt_addresses[2], ("a", "secret-password-2")) == 0
        auth.write_text("authorization { users: [ {user: \n")  # broken
        with pytest.raises(ClusterError, match="did not reload"):
            c.reload(timeout=3)
        assert c.running == [True, True, True]  # a bad file leaves the nodes on the old one
    finally:
        c.stop()


def test_stop_leaves_nothing_and_refusals_are_clear(tmp_path):
    c = Cluster(3, workdir=tmp_path / "cluster").start()
    procs = [n.proc for n in c.nodes]
    c.stop()
    assert all(p.poll() is not None for p in procs) and c.running == [False] * 3
    assert all(port_free("127.0.0.1", n.client_port) for n in c.nodes)
    with pytest.raises(ClusterError, match="at least one node"):
        Cluster(0)
    with pytest.raises(ClusterError, match="authorization file"):
        Cluster(1, workdir=tmp_path / "c2", auth_file=tmp_path / "missing.conf").start()
