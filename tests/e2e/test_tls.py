"""Boxes speak TLS (issue #11 item 5; docs/security.md "Boxes speak TLS"): a real mosquitto with
the listeners `telegest up` writes (plain on 127.0.0.1 for the fleet, TLS on every address for
the boxes, a certificate from tools.pki), the demo readers provisioned through the fleet, the
ingest worker on the plain local listener, and the CPython virtual reader verifying the broker
with the firmware's own TLS context."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import ingest_worker
from tests.helpers import ROOT, count_events, find_device_with_visit_now, reader_for, \
    stored_seqs, wait_until
from tools import pki
from tools.broker import Broker, free_port
from tools.up_broker import admit

pytestmark = pytest.mark.e2e


@pytest.fixture
def tls_broker(demo, tmp_path):
    """(broker, credentials of the demo readers): mosquitto enforcing logins, with TLS."""
    folder = pki.ensure(tmp_path / "pki").folder
    broker = Broker("mosquitto", workdir=tmp_path / "broker", auth=True, tls_port=free_port(),
                    pki=folder, purpose="the TLS e2e tests").start()
    try:
        creds, _ = admit(broker, demo[0], demo[1]["devices"])
        yield broker, creds
    finally:
        broker.stop()


@pytest.fixture
def tls_worker(demo, tls_broker):
    w = ingest_worker(demo[0], tls_broker[0])
    yield w
    w.stop()


def _tls_reader(db_url, broker, creds, tmp_path, ident, ca_pem):
    login = creds["devices"][ident]
    r = reader_for(db_url, broker, tmp_path, ident, username=login["username"],
                   password=login["password"], ca=ca_pem)
    r.port = broker.tls_port  # the boxes' listener
    return r


def test_a_box_with_the_wrong_ca_cannot_connect_then_the_right_one_clocks_in_once(
        demo, tls_broker, tls_worker, tmp_path, caplog):
    db_url, _ = demo
    broker, creds = tls_broker
    ident, _, (_, badge) = find_device_with_visit_now(db_url)
    stranger = pki.init_ca(tmp_path / "other-ca").ca_cert.read_text()  # same names, other CA
    wrong = _tls_reader(db_url, broker, creds, tmp_path, ident, stranger).start()
    try:
        assert wrong.tap(badge) == "in"  # journaled whatever the network does
        wait_until(lambda: wrong.link_error, 15, what="the reader to say why it cannot connect")
        assert "not signed by the CA this reader was provisioned with" in wrong.link_error
        said = [r.getMessage() for r in caplog.records if "TLS to the broker" in r.getMessage()]
        assert len(said) == 1 and wrong.link_error in said[0], "said once, not at every retry"
        # said at the first failure, which may come before or after the tap was journaled
        assert re.search(r"the journal keeps its [01] event\(s\)", said[0]), said[0]
        assert not wrong.connected.is_set()
        assert wrong.depth == 1 and stored_seqs(db_url, ident) == []
        time.sleep(2.5)  # paho retries after 1 s, then 2 s
        assert wrong._pump.is_alive(), "no crash: the reader keeps retrying"
        assert not wrong.connected.is_set() and wrong.depth == 1
    finally:
        wrong.stop()
    # the broker never saw a login from it: the handshake failed before MQTT began
    assert f"as {ident}" not in broker.log_path.read_text()

    right = _tls_reader(db_url, broker, creds, tmp_path, ident,
                        (tmp_path / "pki" / "ca.pem").read_text()).start()
    try:
        assert right.connected.wait(15), right.link_error
        assert right.link_error == ""
        assert right.wait_drained(15), "the fleet acked the event the journal kept"
        assert stored_seqs(db_url, ident) == [1]
        assert count_events(db_url) == (1, 1), "stored exactly once"
    finally:
        right.stop()
    assert "New client connected from 127.0.0.1" in broker.log_path.read_text()


def test_a_broker_certificate_for_another_name_is_refused(demo, tls_broker, tmp_path):
    """The CA is right but the certificate is not for the address the box dials."""
    db_url, _ = demo
    broker, creds = tls_broker
    other = tmp_path / "pki-other-name"
    shutil.copytree(tmp_path / "pki", other)
    pki.server_cert(other, ["mqtt.agency.example"])
    broker.stop()
    broker.pki = other
    broker.start()
    reader = _tls_reader(db_url, broker, creds, tmp_path, "demo-r1",
                         (other / "ca.pem").read_text()).start()
    try:
        wait_until(lambda: reader.link_error, 15, what="the reader to say why")
        assert reader.link_error.startswith("the broker's certificate is not for 127.0.0.1")
        assert not reader.connected.is_set()
    finally:
        reader.stop()


def _netns_peer():
    """A network namespace joined to this host by a veth pair: (name, host address, run)."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.fail("this test needs root and iproute2 (`ip netns`) to be another host")
    name = f"tg{os.getpid() % 100000:05d}"
    net = 16 + os.getpid() % 200
    host, peer = f"10.214.{net}.1", f"10.214.{net}.2"
    steps = [["ip", "netns", "add", name],
             ["ip", "link", "add", f"v{name}a", "type", "veth", "peer", "name", f"v{name}b"],
             ["ip", "link", "set", f"v{name}b", "netns", name],
             ["ip", "addr", "add", f"{host}/30", "dev", f"v{name}a"],
             ["ip", "link", "set", f"v{name}a", "up"],
             ["ip", "netns", "exec", name, "ip", "addr", "add", f"{peer}/30", "dev", f"v{name}b"],
             ["ip", "netns", "exec", name, "ip", "link", "set", f"v{name}b", "up"]]
    for s in steps:
        subprocess.run(s, check=True, capture_output=True)
    return name, host


def _connect_from(ns: str, host: str, port: int) -> str:
    """What a TCP connection to host:port from inside the namespace gives: 'open' or the
    error's name."""
    code = ("import socket\ntry:\n socket.create_connection((%r, %d), timeout=3).close()\n"
            " print('open')\nexcept OSError as e:\n print(type(e).__name__)\n" % (host, port))
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or out.stderr.strip()


def test_the_plain_listener_is_bound_to_localhost_only(tls_broker):
    broker, _ = tls_broker
    ns, host = _netns_peer()
    try:
        assert _connect_from(ns, host, broker.tls_port) == "open", "the boxes' listener"
        assert _connect_from(ns, host, broker.port) == "ConnectionRefusedError"
    finally:
        subprocess.run(["ip", "link", "del", f"v{ns}a"], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    # and from this machine, on loopback, the fleet reaches it
    socket.create_connection(("127.0.0.1", broker.port), timeout=3).close()


@pytest.mark.xdist_group("processes")  # `telegest up`: one at a time (docs/testing.md)
def test_up_makes_a_ca_once_and_its_readers_speak_tls(tmp_path):
    port, mqtt_port, tls_port, data = free_port(), free_port(), free_port(), tmp_path / "var"
    argv = [sys.executable, "-m", "tools.cli", "up", "--data", str(data), "--port", str(port),
            "--mqtt-port", str(mqtt_port), "--mqtts-port", str(tls_port), "--readers", "1",
            "--tap-every", "0.5", "--tls-name", "box-host.lan"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    db_url = f"sqlite:///{data / 'telegest.db'}"
    try:
        wait_until(lambda: (data / "logs" / "readers.log").exists()
                   and stored_seqs(db_url, "demo-r1"), 120, interval=1,
                   what="a demo reader's tap stored")
        log = (data / "logs" / "readers.log").read_text()
        assert f"1 virtual reader(s) on 127.0.0.1:{tls_port} over TLS: demo-r1" in log
        creds = json.loads((data / "broker-credentials.json").read_text())
        assert creds["tls"] == {"broker": f"127.0.0.1:{tls_port}",
                                "ca": str(data / "pki" / "ca.pem")}
        conf = (data / "broker" / "mosquitto.conf").read_text()
        assert f"listener {mqtt_port} 127.0.0.1\n" in conf
        assert f"listener {tls_port}\ncafile {data / 'pki' / 'ca.pem'}" in conf
        assert "tls_version tlsv1.2" in conf
        assert "box-host.lan" in pki.cert_names(data / "pki" / "server.pem")
        assert oct((data / "pki" / "ca.key").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.send_signal(2)
        out, _ = proc.communicate(timeout=60)
    assert f"boxes    TLS on port {tls_port} (every address)" in out, out
    ca = (data / "pki" / "ca.pem").read_bytes()
    again = subprocess.run(argv[:-6] + ["--readers", "0", "--for-seconds", "0.5"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (data / "pki" / "ca.pem").read_bytes() == ca, "the CA is kept: boxes still trust it"
