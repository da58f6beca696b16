"""Finding "floods and guessing" (issue #14, item 1) at the device gateway and enrolment: a
phone ident and an address lock after too many failures, with a 429 (never a wipe), and the
lockout ends by itself."""
from __future__ import annotations

from fleet import throttle

from .conftest import basic


def test_finding_floods_phone_authentication_locks(fleet_api, phone, throttle_clock):
    bad = basic(phone.ident, "not its password")
    for _ in range(5):
        assert fleet_api.get("/gw/v1/device", headers=bad).status_code == 401
    r = fleet_api.get("/gw/v1/device", headers=basic(phone.ident, phone.password))
    assert r.status_code == 429 and r.json()["error"] == "locked"
    assert "Clear-Site-Data" not in r.headers  # a locked phone is never told to wipe
    throttle_clock.t += 15 * 60 + 1
    assert fleet_api.get("/gw/v1/device",
                         headers=basic(phone.ident, phone.password)).status_code == 200


def test_finding_floods_enrolment_locks_per_address(fleet_api, throttle_clock, monkeypatch):
    monkeypatch.setattr(throttle, "BUDGET", throttle.TokenBucket(1000))  # not what is tested
    for i in range(30):
        r = fleet_api.post("/api/v1/enrol", json={"token": f"guess-{i:04d}-" + "x" * 30})
        assert r.status_code == 401
    r = fleet_api.post("/api/v1/enrol", json={"token": "guess-last-" + "x" * 30})
    assert r.status_code == 429 and "Retry-After" in r.headers
