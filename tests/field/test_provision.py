"""`telegest device provision`: the fleet's API, the reader's console, and the check."""
from __future__ import annotations

import pytest

from tools.errors import TelegestError
from tools.field.provision import FleetApi, provision

pytestmark = pytest.mark.virtual_hw


def technician_key(db_url: str, role: str = "technician") -> str:
    from fleet.db import make_engine, session_factory
    from fleet.keys import create_api_key

    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        key = create_api_key(s, role, f"{role} laptop")
        s.commit()
    engine.dispose()
    return key


def client_id(db_url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        cid = c.execute(sa.text("SELECT min(id) FROM clients")).scalar_one()
    engine.dispose()
    return int(cid)


def test_a_new_box_is_registered_provisioned_and_connects(demo, api_server, console_server):
    said: list[str] = []
    api = FleetApi(api_server, technician_key(demo[0]))
    broker = provision(console_server.url, api, "r-0042", "mqtt.agency.example", 8883,
                       client_id=client_id(demo[0]), wifi=("maison", "secret-wifi"),
                       wait_s=20, say=said.append)
    assert broker["id_setting"] == "r-0042" and broker["id"] == "r-0042", "rebooted as r-0042"
    # rebooted with its maintenance key: its console is locked, `broker` refused; the status
    # said what the check needs, and the box holds the rest
    assert broker["console"] == "locked" and broker["mqtt"] == "up"
    s = console_server.rt.settings
    assert (s.get("host"), s.get("port"), s.get("user")) == ("mqtt.agency.example", 8883,
                                                             "r-0042")
    assert s.get("pass") and len(s.get("mkey")) == 64
    assert console_server.boots == 2, "the box was rebooted once to take its identity"
    assert any("connected to mqtt.agency.example:8883 as r-0042" in s for s in said)
    code, dev = api.call("GET", "/api/v1/devices/r-0042")
    assert code == 200 and dev["status"] == "provisioned"
    # the password went to the box, not to the screen
    assert not any(console_server.rt.settings.get("pass") in s for s in said)


def test_running_it_again_gives_new_credentials(demo, api_server, console_server):
    api = FleetApi(api_server, technician_key(demo[0]))
    provision(console_server.url, api, "r-0043", "h", 1883, client_id=client_id(demo[0]),
              wait_s=20, say=lambda s: None)
    first = console_server.rt.settings.get("pass")
    provision(console_server.url, api, "r-0043", "h", 1883, wait_s=20, say=lambda s: None)
    assert console_server.rt.settings.get("pass") != first


def test_plain_errors(demo, api_server, console_server):
    with pytest.raises(TelegestError, match="not registered in the fleet: give --client-id"):
        provision(console_server.url, FleetApi(api_server, technician_key(demo[0])),
                  "r-0044", "h", 1883, say=lambda s: None)
    with pytest.raises(TelegestError, match="refused the API key"):
        provision(console_server.url, FleetApi(api_server, "tg_nope"), "r-0044", "h", 1883,
                  say=lambda s: None)
    with pytest.raises(TelegestError, match="may not provision"):
        provision(console_server.url, FleetApi(api_server, technician_key(demo[0], "manager")),
                  "demo-r1", "h", 1883, say=lambda s: None)
    with pytest.raises(TelegestError, match="cannot reach the fleet"):
        provision(console_server.url, FleetApi("http://127.0.0.1:9", "k"), "r-0044", "h",
                  1883, say=lambda s: None)
