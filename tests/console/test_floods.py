"""Finding "floods and guessing" (issue #14, item 1): sign-ins, phone authentications and
enrolments are limited per account and per address, with a lockout that is audited and ends by
itself; password hashes run with bounded concurrency; passwords need 12 characters and are not
among the common ones.

Before: any number of wrong passwords was checked at full argon2 cost, and `0123456789` or
`password` of 10+ characters was a valid password.
"""
from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet import throttle
from tests.helpers import FakeClock
from fleet.console.auth import AuthError, check_password_rules
from fleet.models import AuditLog

from .conftest import PASSWORD, sign_in




def lockouts(db) -> list[str]:
    with db() as s:
        return [a.target for a in s.scalars(select(AuditLog).where(
            AuditLog.action == "lockout"))]


def test_finding_floods_an_account_locks_after_5_failures_and_unlocks(app, db, throttle_clock):
    c = TestClient(app, follow_redirects=False)
    for _ in range(5):
        assert sign_in(c, "manager@agency.fr", "wrong password!!").status_code == 401
    r = sign_in(c, "manager@agency.fr")  # the right password, but locked: no hash computed
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 15 * 60
    assert "Trop d&#39;échecs de connexion" in r.text
    assert lockouts(db) == ["console:manager@agency.fr"]
    assert sign_in(c, "admin@agency.fr").status_code == 303  # another account still may
    throttle_clock.t += 15 * 60 + 1  # the lockout ends by itself
    assert sign_in(c, "manager@agency.fr").status_code == 303


def test_finding_floods_an_address_locks_after_30_failures(app, db, throttle_clock, monkeypatch):
    monkeypatch.setattr(throttle, "BUDGET", throttle.TokenBucket(1000))  # not what is tested
    c = TestClient(app, follow_redirects=False)
    for i in range(30):
        assert sign_in(c, f"nobody{i}@agency.fr", "wrong password!!").status_code == 401
    assert sign_in(c, "admin@agency.fr").status_code == 429
    assert "address:testclient" in lockouts(db)


def test_finding_floods_hashing_is_bounded():
    """With every slot taken, a hash waits, then is refused (Busy): a flood cannot queue
    unbounded CPU work behind the API and the ingest."""
    held = [throttle._slots.acquire(timeout=1) for _ in range(throttle._concurrency())]
    try:
        assert all(held)
        with pytest.raises(throttle.Busy):
            with throttle.hashing(wait_s=0.05):
                pass
    finally:
        for _ in held:
            throttle._slots.release()
    done = threading.Event()
    with throttle.hashing(wait_s=1):
        done.set()
    assert done.is_set()


def test_finding_floods_hashes_have_a_budget_per_second(app, monkeypatch):
    """Past TELEGEST_HASH_RATE hashes in a second, a sign-in is answered 503 at once, and the
    budget comes back with time."""
    clock = FakeClock()
    monkeypatch.setattr(throttle, "BUDGET", throttle.TokenBucket(3, clock))
    c = TestClient(app, follow_redirects=False)
    codes = [sign_in(c, f"guess{i}@agency.fr", "wrong password!!").status_code
             for i in range(4)]
    assert codes == [401, 401, 401, 503]
    r = sign_in(c, "manager@agency.fr")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    clock.t += 1
    assert sign_in(c, "manager@agency.fr").status_code == 303


@pytest.mark.parametrize("password, ok", [
    ("elevenchars", False), ("qwerty123456", False), ("Q1W2E3R4T5Y6", False),
    ("aaaaaaaaaaaaaaaa", False), ("telegest", False), (PASSWORD, True),
    ("Tournée du matin 7h", True)])
def test_finding_floods_password_rules(password, ok):
    if ok:
        check_password_rules(password)
    else:
        with pytest.raises(AuthError):
            check_password_rules(password)
