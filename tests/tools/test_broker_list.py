"""Several broker addresses (a NATS cluster's nodes): the virtual reader and the worker move
to the next one when a connection fails; bad lists and NATS URLs are clear errors."""
from __future__ import annotations

import socket

import pytest

from fleet.config import Settings, SettingsError
from fleet.nats_transport import topic_of
from tests.helpers import wait_until
from tools.broker import Broker
from tools.cli import main
from tools.sim.reader import VirtualReader
from tools.sim.run import EMPTY_CONFIG


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


@pytest.mark.parametrize("argv,said", [
    (["fleet", "worker", "--broker", "127.0.0.1:1883,host:notaport"],
     "bad broker address 'host:notaport'"),
    (["fleet", "worker", "--nats", "http://127.0.0.1:4222"], "bad NATS server address"),
    (["fleet", "worker", "--nats", "nats://127.0.0.1:port"], "bad broker address"),
    (["device", "sim", "--broker", "127.0.0.1:1883,,x:0", "--count", "1"],
     "bad broker address 'x:0'"),
])
def test_bad_broker_lists_are_clear_errors(argv, said, capsys):
    assert main(argv) == 2
    assert said in capsys.readouterr().err


def test_settings_refuse_bad_lists_and_keep_the_first_address_first():
    s = Settings(database_url="sqlite://", mqtt_host="h0", mqtt_port=1,
                 mqtt_brokers="h1:2, h0:1 ,h2:3", nats_urls="nats://a:4222,tls://b:4223")
    assert s.mqtt_addresses == [("h0", 1), ("h1", 2), ("h2", 3)]
    assert s.nats_servers == ["nats://a:4222", "tls://b:4223"] and s.nats_stream_replicas == 2
    assert Settings(database_url="sqlite://", nats_replicas=1).nats_stream_replicas == 1
    with pytest.raises(SettingsError, match="TELEGEST_MQTT_BROKERS: 'h1' is not host:port"):
        Settings(database_url="sqlite://", mqtt_brokers="h1")
    with pytest.raises(SettingsError, match="TELEGEST_NATS_URLS: 'a:4222' is not a NATS"):
        Settings(database_url="sqlite://", nats_urls="a:4222")
    assert topic_of("tg.v1.r-1.up.clock") == "tg/v1/r-1/up/clock"


@pytest.mark.e2e
def test_the_reader_moves_to_the_next_broker_when_one_fails(tmp_path):
    first, second = (Broker("mosquitto", workdir=tmp_path / n).start() for n in ("a", "b"))
    dead = ("127.0.0.1", _closed_port())
    r = VirtualReader("r-list", *dead, tmp_path / "flash", dict(EMPTY_CONFIG), keepalive=2,
                      brokers=[(first.host, first.port), (second.host, second.port)])
    try:
        r.start()
        wait_until(r.connected.is_set, 20, what="the reader on the second address")
        assert (r.host, r.port) == (first.host, first.port) and r.moves == 1
        first.stop()  # its broker gone: the next one of the list
        wait_until(lambda: r.connected.is_set() and r.port == second.port, 30,
                   what="the reader on the third address")
        assert r.moves == 2
        assert r.tap("04000000000001") != "full"
    finally:
        r.stop()
        first.stop()
        second.stop()
