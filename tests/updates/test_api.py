"""The bundle and rollout routes: upload (signature checked), list, start, pause, resume,
cancel; roles; errors."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fleet.api.app import create_app
from fleet.config import Settings
from fleet.db import make_engine, session_factory
from fleet.keys import create_api_key
from fleet.updates import write_bundle
from tests.updates.bundles import OTHER_PEM, PUB, signed, signed_offer
from tools.up import seed


@pytest.fixture
def client(database_url, monkeypatch):
    monkeypatch.setenv("TELEGEST_UPDATE_KEYS", PUB)
    info = seed(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as s:
        keys = {r: create_api_key(s, r, r) for r in ("admin", "technician")}
        s.commit()
    engine.dispose()
    with TestClient(create_app(Settings(database_url=database_url))) as c:
        c.keys, c.devices = keys, info["devices"]
        c.headers["Authorization"] = f"Bearer {keys['admin']}"
        yield c


def post_bundle(client, bundle, **kw):
    return client.post("/api/v1/bundles", content=write_bundle(bundle),
                       headers={"Content-Type": "application/octet-stream", **kw})


def test_upload_checks_the_signature_and_the_version(client):
    r = post_bundle(client, signed("0.2.0", pem=OTHER_PEM))
    assert r.status_code == 422 and "bad signature" in r.json()["detail"]
    unsigned = signed("0.2.0")
    unsigned.signature = None
    assert post_bundle(client, unsigned).status_code == 422
    assert client.post("/api/v1/bundles", content=b"junk").status_code == 422
    r = post_bundle(client, signed("0.2.0"))
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["version"] == "0.2.0" and b["file_count"] == 3 and len(b["manifest_sha256"]) == 64
    assert post_bundle(client, signed("0.2.0")).status_code == 409
    tech = {"Authorization": f"Bearer {client.keys['technician']}"}
    assert post_bundle(client, signed("0.3.0"), **tech).status_code == 403
    assert client.get("/api/v1/bundles", headers=tech).json()["total"] == 1


def test_rollout_start_status_pause_resume_cancel(client):
    b = signed("0.2.0")
    bid = post_bundle(client, b).json()["id"]
    offer = signed_offer(b)
    r = client.post("/api/v1/rollouts", json={"bundle_id": bid, "devices": client.devices,
                                              "waves": [20, 100], "max_failures": 2,
                                              "offer": offer})
    assert r.status_code == 201, r.text
    ro = r.json()
    assert ro["state"] == "running" and ro["wave"] == -1
    assert [t["wave"] for t in ro["targets"]] == [0, 1, 1, 1, 1]
    assert ro["wave_counts"] == [{"waiting": 1}, {"waiting": 4}]
    assert ro["offer"] == {"oid": offer["oid"], "ch": "stable", "exp": offer["exp"]}
    again = client.post("/api/v1/rollouts", json={"bundle_id": bid, "filter": {"prefix": "demo-"},
                                                  "offer": offer})
    assert again.status_code == 409  # the devices are in a rollout already
    rid = ro["id"]
    assert client.post(f"/api/v1/rollouts/{rid}/pause", json={"reason": "look"}).json()[
        "state"] == "paused"
    assert client.post(f"/api/v1/rollouts/{rid}/pause").status_code == 409
    assert client.post(f"/api/v1/rollouts/{rid}/resume").json()["state"] == "running"
    assert client.post(f"/api/v1/rollouts/{rid}/explode").status_code == 404
    done = client.post(f"/api/v1/rollouts/{rid}/cancel").json()
    assert done["state"] == "cancelled" and {t["state"] for t in done["targets"]} == {"cancelled"}
    assert client.get("/api/v1/rollouts").json()["items"][0]["id"] == rid
    r = client.post("/api/v1/rollouts", json={"bundle_id": bid, "filter": {"prefix": "demo-"},
                                              "offer": offer})
    assert r.status_code == 201 and len(r.json()["targets"]) == 5
    assert client.post("/api/v1/rollouts", json={"bundle_id": bid, "devices": ["nope"],
                                                 "offer": offer}).status_code == 422
    assert client.post("/api/v1/rollouts", json={"bundle_id": 999, "devices": ["demo-r1"],
                                                 "offer": offer}).status_code == 404


@pytest.mark.parametrize("case,detail", [
    ("missing", "signed offer"), ("expired", "expired"), ("other_key", "bad signature"),
    ("relabelled", "bad signature"), ("other_version", "not this bundle"),
    ("extra_field", "exactly"),
])
def test_rollout_refuses_an_offer_not_signed_for_it(client, case, detail):
    b = signed("0.2.0")
    bid = post_bundle(client, b).json()["id"]
    offer = {"missing": None, "expired": signed_offer(b, ttl_s=-1),
             "other_key": signed_offer(b, pem=OTHER_PEM),
             "relabelled": dict(signed_offer(b, ch="beta"), ch="stable"),
             "other_version": signed_offer(signed("0.3.0")),
             "extra_field": dict(signed_offer(b), note="x")}[case]
    r = client.post("/api/v1/rollouts", json={"bundle_id": bid, "devices": client.devices,
                                              "offer": offer})
    assert r.status_code == 422 and detail in r.json()["detail"], r.text
    assert client.get("/api/v1/rollouts").json()["total"] == 0
