"""The command line's plain errors, broker management, and the virtual reader's control topic."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, wait_until
from tools.broker import Broker, BrokerError
from tools.cli import main
from tools.sim.reader import VirtualReader
from tools.sim.run import EMPTY_CONFIG, parse_broker, pick_badge
from tools.up_broker import CREDENTIALS, admit, write_credentials


@pytest.mark.parametrize("url,expected", [
    ("127.0.0.1:1884", ("127.0.0.1", 1884)),
    ("mqtt://broker.example:1883", ("broker.example", 1883)),
    ("localhost", ("localhost", 1883)),
])
def test_parse_broker(url, expected):
    assert parse_broker(url) == expected


def test_bad_broker_address_is_a_clear_error(capsys):
    assert main(["device", "tap", "r1", "04AA", "--broker", "host:notaport"]) == 2
    assert "bad broker address 'host:notaport'" in capsys.readouterr().err


def test_unreachable_broker_is_a_clear_error(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        assert main(["device", "tap", "r1", "04AA", "--broker", f"127.0.0.1:{port}"]) == 2
    assert "cannot reach the broker" in capsys.readouterr().err


def test_broker_on_a_taken_port_says_so(tmp_path):
    with Broker("mosquitto", workdir=tmp_path / "a") as first:
        with pytest.raises(BrokerError, match="is taken"):
            Broker("mosquitto", port=first.port, workdir=tmp_path / "b").start(timeout=2)


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
def test_broker_stops_and_restarts_on_the_same_port(kind, tmp_path):
    b = Broker(kind, workdir=tmp_path).start()
    port = b.port
    b.restart()
    assert b.running and b.port == port
    b.kill()
    assert not b.running
    b.start()
    b.stop()


def test_pick_badge_prefers_a_visit_around_now():
    import random

    now = int(time.time())
    cfg = dict(EMPTY_CONFIG, badges=["04AAAAAAAAAAAA", "04BBBBBBBBBBBB"],
               visits=[[1, "04BBBBBBBBBBBB", now - 60, now + 3600]])
    assert {pick_badge(cfg, now, random.Random(i)) for i in range(20)} == {"04BBBBBBBBBBBB"}
    assert pick_badge(EMPTY_CONFIG, now, random.Random()) is None


def test_tap_command_reaches_a_running_virtual_reader(tmp_path):
    """`telegest device tap` publishes on the control topic; the reader journals the tap."""
    with Broker("mosquitto", workdir=tmp_path / "broker") as b:
        cfg = dict(EMPTY_CONFIG, badges=["04A1B2C3D4E5F6"])
        r = VirtualReader("ctl-1", b.host, b.port, tmp_path / "flash", cfg).start()
        try:
            assert r.connected.wait(10)
            out = subprocess.run([sys.executable, "-m", "tools.cli", "device", "tap", "ctl-1",
                                  "04a1b2c3d4e5f6", "--broker", f"{b.host}:{b.port}"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            wait_until(lambda: r.last_seq == 1, 10, what="the tap journaled")
            assert r.feedback.last() == "unplanned_in"
        finally:
            r.stop()


def test_up_broker_lets_only_sim_control_tap_a_provisioned_reader(demo, tmp_path, capsys):
    """`telegest up`'s broker (tools/up_broker.py): the demo readers are provisioned with the
    development simulator role; the tap topic takes the sim-control login, not an anonymous one."""
    db_url, _ = demo
    with Broker("mosquitto", workdir=tmp_path / "broker", auth=True) as b:
        creds, refused = admit(b, db_url, ["demo-r1", "demo-r2"])
        assert refused == {} and set(creds["devices"]) == {"demo-r1", "demo-r2"}
        path = tmp_path / CREDENTIALS
        write_credentials(path, creds)
        login = creds["devices"]["demo-r1"]
        r = VirtualReader("demo-r1", b.host, b.port, tmp_path / "flash",
                          dict(EMPTY_CONFIG, badges=["04A1B2C3D4E5F6"]),
                          username=login["username"], password=login["password"]).start()
        try:
            assert r.connected.wait(10), r.refused
            tap = ["device", "tap", "demo-r1", "04A1B2C3D4E5F6", "--broker", f"{b.host}:{b.port}"]
            assert main(tap) == 2
            assert "refused the connection: Not authorized" in capsys.readouterr().err
            assert main([*tap, "--credentials", str(path)]) == 0
            wait_until(lambda: r.last_seq == 1, 10, what="the tap journaled")
        finally:
            r.stop()
    assert main(["device", "sim", "--devices", "demo-r3", "--credentials", str(path)]) == 2
    assert "no credentials for demo-r3" in capsys.readouterr().err


def test_sim_without_devices_is_a_clear_error(capsys):
    assert main(["device", "sim", "--broker", "127.0.0.1:1"]) == 2
    assert "no devices to simulate" in capsys.readouterr().err
