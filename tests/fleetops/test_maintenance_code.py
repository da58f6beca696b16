"""Maintenance codes from the fleet (issue #11 item 6): the reader's key is made at its first
staged provisioning and kept; `POST /devices/{ident}/maintenance-code` and `telegest fleet
device maintenance-code` give a code the box's own check (firmware/maintcode.py) accepts for
that box only, for 30 minutes; admins and technicians only; every code is audited."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from firmware import maintcode
from fleet.brokerauth import NoBrokerAuth
from tests.fleetops.conftest import as_role, make_api
from tools.cli import build_parser
from tools.errors import TelegestError


@pytest.fixture
def client(demo):
    return make_api(demo[0], NoBrokerAuth())


def _stage(client, ident="demo-r1") -> dict:
    r = client.post(f"/api/v1/devices/{ident}/provision/stage",
                    headers=as_role(client, "technician"))
    assert r.status_code == 200, r.text
    return r.json()


def test_maintenance_code_opens_only_its_own_box_for_30_minutes(client):
    r = client.post("/api/v1/devices/demo-r1/maintenance-code")
    assert r.status_code == 409 and "no maintenance key yet" in r.json()["detail"]
    key = _stage(client)["maint_key"]
    assert len(bytes.fromhex(key)) == 32
    assert _stage(client)["maint_key"] == key, "kept across provisionings"
    assert _stage(client, "demo-r2")["maint_key"] != key

    r = client.post("/api/v1/devices/demo-r1/maintenance-code", json={"reason": "new router"},
                    headers=as_role(client, "technician"))
    assert r.status_code == 200, r.text
    out = r.json()
    expires = datetime.fromisoformat(out["expires_at"]).timestamp()
    issued = expires - 30 * 60
    assert maintcode.check(bytes.fromhex(key), "demo-r1", out["code"], issued)[0] == expires
    with pytest.raises(ValueError, match="another box"):
        maintcode.check(bytes.fromhex(key), "demo-r2", out["code"], issued)
    with pytest.raises(ValueError, match="expired"):
        maintcode.check(bytes.fromhex(key), "demo-r1", out["code"], expires)

    r = client.post("/api/v1/devices/demo-r1/maintenance-code",
                    headers=as_role(client, "manager"))
    assert r.status_code == 403 and "needs admin or technician" in r.json()["detail"]
    assert client.post("/api/v1/devices/nope/maintenance-code").status_code == 404
    audit = client.get("/api/v1/audit", params={"target": "device:demo-r1",
                                               "action": "maintenance_code"})
    assert audit.status_code == 200, audit.text
    entries = audit.json()["items"]
    assert len(entries) == 1 and entries[0]["why"] == "new router"
    assert out["code"] not in json.dumps(entries)


def test_maintenance_code_for_a_phone_is_refused(client):
    caregiver = client.get("/api/v1/caregivers").json()["items"][0]
    client.post("/api/v1/devices", json={"ident": "phone-1", "kind": "phone",
                                         "caregiver_id": caregiver["id"]})
    r = client.post("/api/v1/devices/phone-1/maintenance-code")
    assert r.status_code == 422 and "only readers" in r.json()["detail"]


def test_maintenance_code_cli_prints_the_code_and_audits(client, demo, capsys):
    _stage(client, "demo-r3")
    argv = ["fleet", "device", "maintenance-code", "demo-r3", "--by", "alice", "--db", demo[0]]
    args = build_parser().parse_args(argv)
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "maintenance code for demo-r3: " in out and "valid once, until" in out
    args = build_parser().parse_args(["fleet", "device", "audit", "demo-r3", "--json",
                                      "--action", "maintenance_code", "--db", demo[0]])
    args.handler(args)
    rows = json.loads(capsys.readouterr().out)
    assert [(r["who"], r["action"]) for r in rows] == [("cli:alice", "maintenance_code")]
    args = build_parser().parse_args([*argv[:3], "demo-r4", "--by", "bob", "--db", demo[0]])
    with pytest.raises(TelegestError, match="no maintenance key yet"):
        args.handler(args)
