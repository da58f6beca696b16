"""Transitions, roles, credentials shown once, enrolment tokens, the audit log; the exact
dynamic-security JSON the fleet writes and sends."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from fleet import brokerauth
from fleet.brokerauth import NoBrokerAuth
from fleet.lifecycle import TRANSITIONS, LifecycleError, check_secret, next_status
from fleet.models import Device
from tests.fleetops.conftest import as_role, make_api
from tools.broker import Broker, BrokerError

# -- dynamic security JSON --------------------------------------------------------------------


def test_password_hash_is_the_one_mosquitto_ctrl_writes():
    # `mosquitto_ctrl dynsec init ds.json fleetadmin s3cretPass1` wrote this salt and hash
    salt = base64.b64decode("33fwXUBquwAyLZ8f")
    assert brokerauth.dynsec_password("s3cretPass1", salt) == {
        "password": "/40/YWg9Yv4svymCepr6pIOp87ATOQRMT8Kd3w7EKzNnHagi+h3UN58/WpeshVrklMmgJ+fv"
                    "Mbho1ylTlZrbQA==",
        "salt": "33fwXUBquwAyLZ8f", "iterations": 101}


def test_device_commands_exact_json():
    assert brokerauth.payload(brokerauth.device_commands("r-0042", "pw")) == (
        b'{"commands":[{"command":"deleteClient","username":"r-0042"},'
        b'{"command":"deleteRole","rolename":"device:r-0042"},'
        b'{"command":"createRole","rolename":"device:r-0042","acls":['
        b'{"acltype":"publishClientSend","topic":"tg/v1/r-0042/up/#","allow":true},'
        b'{"acltype":"publishClientSend","topic":"tg/v1/r-0042/state","allow":true},'
        b'{"acltype":"subscribePattern","topic":"tg/v1/r-0042/down/#","allow":true},'
        b'{"acltype":"publishClientReceive","topic":"tg/v1/r-0042/down/#","allow":true}]},'
        b'{"command":"createClient","username":"r-0042","password":"pw","clientid":"r-0042",'
        b'"textname":"telegest device r-0042","roles":[{"rolename":"device:r-0042",'
        b'"priority":1}]}]}')
    assert brokerauth.payload([brokerauth.disable_command("r-0042")]) == \
        b'{"commands":[{"command":"disableClient","username":"r-0042"}]}'
    assert brokerauth.delete_commands("r-0042") == [
        {"command": "deleteClient", "username": "r-0042"},
        {"command": "deleteRole", "rolename": "device:r-0042"}]


def test_initial_config_denies_by_default_and_holds_the_fleet_clients():
    cfg = brokerauth.initial_config(("adm", "a" * 20), ("wrk", "w" * 20), salt=b"\0" * 12)
    assert cfg["defaultACLAccess"] == {"publishClientSend": False,
                                       "publishClientReceive": False,
                                       "subscribe": False, "unsubscribe": True}
    assert [(c["username"], c["roles"]) for c in cfg["clients"]] == [
        ("adm", [{"rolename": "fleet-admin"}]), ("wrk", [{"rolename": "fleet-worker"}])]
    assert "a" * 20 not in json.dumps(cfg)  # only the hash
    worker = {r["rolename"]: r["acls"] for r in cfg["roles"]}["fleet-worker"]
    assert {"acltype": "subscribePattern", "topic": "$share/fleet/tg/v1/+/up/#",
            "allow": True} in worker
    assert {"acltype": "publishClientSend", "topic": "tg/v1/+/down/#", "allow": True} in worker


def test_embedded_broker_refuses_auth(tmp_path):
    with pytest.raises(BrokerError, match="development only"):
        Broker("amqtt", workdir=tmp_path, auth=True)


# -- transitions ------------------------------------------------------------------------------
STATUSES = ("registered", "provisioned", "active", "blocked", "wiped", "retired")


@pytest.mark.parametrize("action", sorted(TRANSITIONS))
@pytest.mark.parametrize("status", STATUSES)
def test_transition_table(action, status):
    sources, target = TRANSITIONS[action]
    device = Device(ident="d1", status=status)
    if status in sources:
        assert next_status(device, action) == target
    else:
        with pytest.raises(LifecycleError) as e:
            next_status(device, action)
        assert e.value.status == 409 and f"is {status}: cannot {action}" in e.value.message


def test_retired_is_final_and_block_needs_a_live_device():
    assert all("retired" not in src for src, _ in TRANSITIONS.values())
    assert TRANSITIONS["block"][0] == ("provisioned", "active")


# -- through the API (anonymous broker: the lifecycle and the audit log alone) -----------------
@pytest.fixture
def client(demo):
    return make_api(demo[0], NoBrokerAuth())


def _phone(client) -> str:
    caregiver = client.get("/api/v1/caregivers").json()["items"][0]
    r = client.post("/api/v1/devices", json={"ident": "phone-1", "kind": "phone",
                                             "caregiver_id": caregiver["id"]})
    assert r.status_code == 201, r.text
    return "phone-1"


def test_provision_shows_a_new_password_once_and_keeps_only_a_hash(client, demo):
    a = client.post("/api/v1/devices/demo-r1/provision").json()
    b = client.post("/api/v1/devices/demo-r2/provision").json()
    again = client.post("/api/v1/devices/demo-r1/provision").json()
    assert a["username"] == a["client_id"] == "demo-r1" and a["status"] == "provisioned"
    assert len({a["password"], b["password"], again["password"]}) == 3
    assert a["broker_enforced"] is False
    engine = sa.create_engine(demo[0])
    with engine.connect() as c:
        stored = c.execute(sa.text("SELECT credential_hash FROM devices WHERE ident='demo-r1'"))\
            .scalar_one()
    engine.dispose()
    assert again["password"] not in stored and check_secret(again["password"], stored)
    assert not check_secret(a["password"], stored)
    assert "password" not in client.get("/api/v1/devices/demo-r1").json()


def test_roles_reasons_and_transitions_give_clear_errors(client):
    r = client.post("/api/v1/devices/demo-r1/provision", headers=as_role(client, "manager"))
    assert r.status_code == 403 and "needs admin or technician" in r.json()["detail"]
    r = client.post("/api/v1/devices/demo-r1/block", json={"reason": "stolen"},
                    headers=as_role(client, "technician"))
    assert r.status_code == 403 and "needs admin or manager" in r.json()["detail"]
    r = client.post("/api/v1/devices/demo-r1/block", json={"reason": "  "})
    assert r.status_code == 422 and "reason is required" in r.json()["detail"]
    assert client.post("/api/v1/devices/demo-r1/block", json={}).status_code == 422
    r = client.post("/api/v1/devices/nope/block", json={"reason": "x"})
    assert r.status_code == 404
    r = client.post("/api/v1/devices/demo-r1/unblock")
    assert r.status_code == 409 and r.json()["detail"] == \
        "device 'demo-r1' is active: cannot unblock it (only from blocked)"

    cmd = client.post("/api/v1/devices/demo-r1/block", json={"reason": "phone stolen"},
                      headers=as_role(client, "manager")).json()
    assert cmd["kind"] == "wipe" and cmd["state"] == "pending"
    assert cmd["payload"]["id"] == cmd["id"] and cmd["payload"]["cmd"] == "wipe"
    assert client.post("/api/v1/devices/demo-r1/block",
                       json={"reason": "again"}).status_code == 409
    creds = client.post("/api/v1/devices/demo-r1/unblock",
                        headers=as_role(client, "technician")).json()
    assert creds["status"] == "provisioned"
    cmds = client.get("/api/v1/devices/demo-r1/commands").json()["items"]
    assert cmds[0]["state"] == "failed" and cmds[0]["result"].startswith("superseded")
    assert client.post("/api/v1/devices/demo-r1/retire", json={"reason": "broken"},
                       headers=as_role(client, "manager")).json()["status"] == "retired"
    r = client.post("/api/v1/devices/demo-r1/provision")
    assert r.status_code == 409 and "is retired" in r.json()["detail"]


def test_enrolment_token_works_once_and_refusals_are_logged(client, demo):
    ident = _phone(client)
    assert client.post("/api/v1/devices/demo-r1/enrolment").status_code == 422  # a reader
    r = client.post(f"/api/v1/devices/{ident}/enrolment")
    assert r.status_code == 201
    token = r.json()["token"]
    bare = {"Authorization": ""}
    got = client.post("/api/v1/enrol", json={"token": token}, headers=bare)
    assert got.status_code == 200 and got.json()["username"] == ident
    replay = client.post("/api/v1/enrol", json={"token": token}, headers=bare)
    assert replay.status_code == 410 and "already used" in replay.json()["detail"]
    forged = client.post("/api/v1/enrol", json={"token": "tge_" + "A" * 32}, headers=bare)
    assert forged.status_code == 401 and forged.json()["detail"] == "unknown enrolment token"

    late = client.post(f"/api/v1/devices/{ident}/enrolment").json()["token"]
    engine = sa.create_engine(demo[0])
    with engine.begin() as c:
        c.execute(sa.text("UPDATE enrolment_tokens SET expires_at = :t WHERE used_at IS NULL"),
                  {"t": "2020-01-01 00:00:00.000000"})
    engine.dispose()
    expired = client.post("/api/v1/enrol", json={"token": late}, headers=bare)
    assert expired.status_code == 410 and "expired" in expired.json()["detail"]

    refused = client.get("/api/v1/audit", params={"action": "enrol_refused"}).json()["items"]
    assert [(e["target"], e["why"].split(" at ")[0]) for e in refused] == [
        (f"device:{ident}", "enrolment token expired"), ("enrolment", "unknown enrolment token"),
        (f"device:{ident}", "enrolment token already used")]
    actions = [e["action"] for e in client.get(
        "/api/v1/audit", params={"target": f"device:{ident}"}).json()["items"]]
    assert actions == ["enrol_refused", "enrolment", "enrol_refused", "enrol", "enrolment",
                       "register"]


def test_audit_lists_who_role_why_with_filters(client):
    client.post("/api/v1/devices/demo-r1/provision", headers=as_role(client, "technician"))
    client.post("/api/v1/devices/demo-r1/block", json={"reason": "lost on the bus"},
                headers=as_role(client, "manager"))
    items = client.get("/api/v1/audit", params={"target": "device:demo-r1"}).json()["items"]
    assert [(e["action"], e["role"], e["why"]) for e in items] == [
        ("block", "manager", "lost on the bus"), ("provision", "technician", None)]
    assert items[0]["who"].endswith(":tests-manager")
    assert items[0]["detail"]["from"] == "provisioned" and items[0]["detail"]["to"] == "blocked"
    assert "acked_seq" in items[0]["detail"]
    assert client.get("/api/v1/audit", params={"target": "device:demo-r*",
                                               "action": "block"}).json()["total"] == 1
    future = client.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["total"] == 0
    assert client.get("/api/v1/audit", headers=as_role(client, "technician")).status_code == 403


def test_since_must_be_aware(client):
    assert client.get("/api/v1/audit", params={"since": "2026-01-01T00:00:00"}).status_code \
        == 422


def test_wipe_ttl_is_long_enough_to_find_a_lost_device():
    from fleet.lifecycle import ENROLMENT_TTL, WIPE_TTL

    assert ENROLMENT_TTL == timedelta(minutes=15) and WIPE_TTL >= timedelta(days=7)
