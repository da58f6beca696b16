"""Finding "floods and guessing" (issue #14, item 1) at the device gateway and enrolment: a
phone ident and an address lock after too many failures, with a 429 (never a wipe), and the
lockout ends by itself."""
from __future__ import annotations

import pytest

from fleet import throttle

from .conftest import basic


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(throttle.ACCOUNTS, "clock", c)
    monkeypatch.setattr(throttle.ADDRESSES, "clock", c)
    return c


def test_finding_floods_phone_authentication_locks(fleet_api, phone, clock):
    bad = basic(phone.ident, "not its password")
    for _ in range(5):
        assert fleet_api.get("/gw/v1/device", headers=bad).status_code == 401
    r = fleet_api.get("/gw/v1/device", headers=basic(phone.ident, phone.password))
    assert r.status_code == 429 and r.json()["error"] == "locked"
    assert "Clear-Site-Data" not in r.headers  # a locked phone is never told to wipe
    clock.t += 15 * 60 + 1
    assert fleet_api.get("/gw/v1/device",
                         headers=basic(phone.ident, phone.password)).status_code == 200


def test_finding_floods_enrolment_locks_per_address(fleet_api, clock, monkeypatch):
    monkeypatch.setattr(throttle, "BUDGET", throttle.TokenBucket(1000))  # not what is tested
    for i in range(30):
        r = fleet_api.post("/api/v1/enrol", json={"token": f"guess-{i:04d}-" + "x" * 30})
        assert r.status_code == 401
    r = fleet_api.post("/api/v1/enrol", json={"token": "guess-last-" + "x" * 30})
    assert r.status_code == 429 and "Retry-After" in r.headers
