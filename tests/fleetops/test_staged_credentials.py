"""Provisioning in two phases on a real mosquitto with dynamic security: staged credentials are
held disabled by the broker while the old ones keep working; only a confirm with the box's
digest switches; a wrong digest, an abandon or an expired stage leave the old ones active."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from fleet import brokerauth
from fleet.brokerauth import DynsecControl, DynsecSettings
from fleet.lifecycle import broker_proof
from firmware.runtime.settings import digest
from tests.fleetops.conftest import as_role, login, make_api

pytestmark = pytest.mark.e2e


def test_stage_and_confirm_commands_exact_json():
    assert brokerauth.slots("r-7") == ("r-7", "r-7.2")
    assert brokerauth.other_slot("r-7", None) == "r-7.2"
    assert brokerauth.other_slot("r-7", "r-7.2") == "r-7"
    cmds = brokerauth.stage_commands("r-7", "r-7.2", "pw")
    assert [c["command"] for c in cmds] == ["deleteClient", "createRole", "createClient",
                                            "disableClient"]
    assert cmds[2]["clientid"] == "r-7" and cmds[3] == {"command": "disableClient",
                                                        "username": "r-7.2"}
    assert brokerauth.confirm_commands("r-7.2", "r-7") == [
        {"command": "enableClient", "username": "r-7.2"},
        {"command": "deleteClient", "username": "r-7"}]
    assert brokerauth.confirm_commands("r-7", None) == [
        {"command": "enableClient", "username": "r-7"}]


def test_the_proof_is_the_boxs_settings_digest():
    # the same function the firmware answers with, over its stored `user` and `pass`
    assert broker_proof("u", "p") == digest({"user": "u", "pass": "p", "ssid": "x"},
                                            ("user", "pass"))
    assert broker_proof("u", "p") != broker_proof("u", "q")


def _stage(api, ident="demo-r1"):
    r = api.post(f"/api/v1/devices/{ident}/provision/stage",
                 headers=as_role(api, "technician"))
    assert r.status_code == 200, r.text
    return r.json()


def test_old_credentials_work_until_the_box_confirms(demo, secured):
    db_url, _ = demo
    control = DynsecControl(DynsecSettings(secured.host, secured.port, *secured.admin))
    api = make_api(db_url, control)
    tech = as_role(api, "technician")
    try:
        first = api.post("/api/v1/devices/demo-r1/provision", headers=tech).json()
        old = (first["username"], first["password"])
        assert login(secured, *old, "demo-r1") == "Success"

        # staged: the old login works, the staged one is refused until confirmed
        s1 = _stage(api)
        assert s1["username"] == "demo-r1.2" and s1["client_id"] == "demo-r1"
        assert api.get("/api/v1/devices/demo-r1").json()["staged_expires_at"]
        assert login(secured, *old, "demo-r1") == "Success"
        assert login(secured, s1["username"], s1["password"], "demo-r1") == "Not authorized"

        # a wrong digest: refused, audited, nothing changes
        wrong = broker_proof(s1["username"], s1["password"] + "x")
        r = api.post("/api/v1/devices/demo-r1/provision/confirm", headers=tech,
                     json={"staging_id": s1["staging_id"], "digest": wrong})
        assert r.status_code == 422 and "does not match" in r.json()["detail"]
        assert login(secured, *old, "demo-r1") == "Success"
        # not a digest at all, or an unknown stage
        assert api.post("/api/v1/devices/demo-r1/provision/confirm", headers=tech,
                        json={"staging_id": s1["staging_id"], "digest": "zz"}).status_code == 422
        r = api.post("/api/v1/devices/demo-r1/provision/confirm", headers=tech,
                     json={"staging_id": "nope", "digest": "0" * 64})
        assert r.status_code == 409 and "current credentials stay active" in r.json()["detail"]

        # abandoned: the staged login is gone, the old one works; abandoning again is a 409
        r = api.post("/api/v1/devices/demo-r1/provision/abandon", headers=tech,
                     json={"staging_id": s1["staging_id"], "reason": "box refused"})
        assert r.status_code == 200 and r.json()["staged_expires_at"] is None
        assert login(secured, *old, "demo-r1") == "Success"
        assert login(secured, s1["username"], s1["password"], "demo-r1") == "Not authorized"
        assert api.post("/api/v1/devices/demo-r1/provision/abandon", headers=tech,
                        json={"staging_id": s1["staging_id"]}).status_code == 409

        # expired: the confirm is refused even with the right digest, the old login works
        s2 = _stage(api)
        engine = sa.create_engine(db_url)
        with engine.begin() as c:
            c.execute(sa.text("UPDATE devices SET staged_expires_at = :t WHERE ident = 'demo-r1'"),
                      {"t": "2020-01-01 00:00:00.000000"})
        engine.dispose()
        r = api.post("/api/v1/devices/demo-r1/provision/confirm", headers=tech,
                     json={"staging_id": s2["staging_id"],
                           "digest": broker_proof(s2["username"], s2["password"])})
        assert r.status_code == 410 and "old ones stay active" in r.json()["detail"]
        assert login(secured, *old, "demo-r1") == "Success"
        assert login(secured, s2["username"], s2["password"], "demo-r1") == "Not authorized"

        # a manager may not stage; a phone is not staged
        assert api.post("/api/v1/devices/demo-r1/provision/stage",
                        headers=as_role(api, "manager")).status_code == 403

        # confirmed with the box's digest: the new login works, the old one never again
        s3 = _stage(api)
        r = api.post("/api/v1/devices/demo-r1/provision/confirm", headers=tech,
                     json={"staging_id": s3["staging_id"],
                           "digest": broker_proof(s3["username"], s3["password"]).upper()})
        assert r.status_code == 200 and r.json()["status"] == "provisioned", r.text
        assert login(secured, s3["username"], s3["password"], "demo-r1") == "Success"
        assert login(secured, *old, "demo-r1") == "Not authorized"
        # confirming twice: no such stage
        assert api.post("/api/v1/devices/demo-r1/provision/confirm", headers=tech,
                        json={"staging_id": s3["staging_id"],
                              "digest": "0" * 64}).status_code == 409

        # the next stage goes back to slot `demo-r1`; blocking drops the staged login too
        s4 = _stage(api)
        assert s4["username"] == "demo-r1"
        assert api.post("/api/v1/devices/demo-r1/block", json={"reason": "stolen"},
                        headers=as_role(api, "manager")).status_code == 200
        assert login(secured, s3["username"], s3["password"], "demo-r1") == "Not authorized"
        assert login(secured, s4["username"], s4["password"], "demo-r1") == "Not authorized"
        # unblocking gives slot `demo-r1` at once
        new = api.post("/api/v1/devices/demo-r1/unblock", headers=tech,
                       json={"reason": "found"}).json()
        assert new["username"] == "demo-r1"
        assert login(secured, new["username"], new["password"], "demo-r1") == "Success"

        audit = api.get("/api/v1/audit", params={"target": "device:demo-r1"}).json()["items"]
        actions = [e["action"] for e in reversed(audit)]
        assert actions.count("provision_stage") == 4
        # wrong digest, unknown stage, abandoned twice, expired, confirmed twice
        assert actions.count("provision_refused") == 5
        assert "provision_abandon" in actions
        confirmed = [e for e in audit if e["action"] == "provision"
                     and e["detail"].get("staging_id") == s3["staging_id"]]
        assert confirmed and confirmed[0]["detail"]["previous"] == "demo-r1"
        text = str(audit)
        for secret in (old[1], s1["password"], s2["password"], s3["password"]):
            assert secret not in text
    finally:
        control.close()


def test_a_phone_is_not_staged(demo):
    from fleet.brokerauth import NoBrokerAuth

    db_url, _ = demo
    api = make_api(db_url, NoBrokerAuth())
    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        caregiver = c.execute(sa.text("SELECT min(id) FROM caregivers")).scalar_one()
    engine.dispose()
    assert api.post("/api/v1/devices", json={"ident": "p-0001", "kind": "phone",
                                             "caregiver_id": caregiver}).status_code == 201
    r = api.post("/api/v1/devices/p-0001/provision/stage", headers=as_role(api, "technician"))
    assert r.status_code == 422 and "phones enrol" in r.json()["detail"]
