"""Finding "web hardening" (issue #14, item 7), its sessions: console sessions kept
server-side, so that logout, "sign out everywhere", a new password and disabling a user
(`telegest fleet user disable`) end them at once, with an idle timeout.

Before: the session was a signed cookie that stayed valid after logout until it expired (8 h),
with no idle timeout and no way to end it elsewhere; TELEGEST_CONSOLE_SECRET crashed every
sign-in (NameError).
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from fleet.config import Settings, SettingsError
from fleet.console import auth, sessions
from fleet.console.auth import SESSION_COOKIE
from fleet.models import AuditLog, ConsoleSession, User
from fleet.types import utcnow
from tools.errors import TelegestError

from .conftest import PASSWORD, csrf_of, sign_in
from .test_users_cli import run


def rows_of(db, email: str) -> int:
    with db() as s:
        return s.scalar(select(func.count()).select_from(ConsoleSession).join(
            User, User.id == ConsoleSession.user_id).where(User.email == email))


def last_seen(db, ago: timedelta, *where) -> None:
    """Every session (or those matching `where`) last seen `ago` before now."""
    with db() as s:
        s.execute(update(ConsoleSession).where(*where).values(last_seen_at=utcnow() - ago))
        s.commit()


def audited(db, action: str) -> list[AuditLog]:
    with db() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)))


# -- server-side sessions ------------------------------------------------------------------------
def test_web_hardening_logout_ends_the_session_on_the_server(app, db):
    c = TestClient(app)
    r = sign_in(c, "manager@agency.fr")
    cookie = c.cookies[SESSION_COOKIE]
    with db() as s:  # only the token's hash is kept
        row = s.scalars(select(ConsoleSession)).one()
        assert row.token_hash == hashlib.sha256(cookie.encode()).hexdigest()
        assert cookie not in row.token_hash and row.csrf == csrf_of(r.text)
    c.post("/logout", data={"csrf": csrf_of(r.text)})
    assert rows_of(db, "manager@agency.fr") == 0
    # a copy of the cookie taken before the logout signs no one in
    copy = TestClient(app, cookies={SESSION_COOKIE: cookie})
    assert copy.get("/planning").url.path == "/login"


def test_web_hardening_idle_timeout_ends_a_session(app, as_role, db):
    c = as_role("manager")
    idle = timedelta(minutes=app.state.settings.console_idle_minutes)
    assert idle == timedelta(minutes=30)  # the default
    last_seen(db, idle - timedelta(minutes=1))  # active within the timeout: kept, seen again
    assert c.get("/planning").url.path == "/planning"
    with db() as s:
        assert utcnow() - s.scalars(select(ConsoleSession)).one().last_seen_at < \
            timedelta(seconds=5)
    last_seen(db, idle - timedelta(minutes=1))  # the board's refresh is nobody at the keyboard
    assert c.get("/board/rows").status_code == 200
    with db() as s:
        assert utcnow() - s.scalars(select(ConsoleSession)).one().last_seen_at > \
            timedelta(minutes=28)
    last_seen(db, idle + timedelta(seconds=1))
    r = c.get("/planning")
    assert r.url.path == "/login" and "expired=1" in str(r.url)
    assert rows_of(db, "manager@agency.fr") == 0


def test_web_hardening_idle_timeout_and_lifetime_are_settings(monkeypatch):
    monkeypatch.setenv("TELEGEST_CONSOLE_IDLE_MINUTES", "10")
    monkeypatch.setenv("TELEGEST_CONSOLE_SESSION_MINUTES", "120")
    lt = sessions.Lifetimes.of(Settings())
    assert (lt.idle, lt.absolute) == (timedelta(minutes=10), timedelta(hours=2))
    monkeypatch.setenv("TELEGEST_CONSOLE_IDLE_MINUTES", "0")
    with pytest.raises(SettingsError, match="TELEGEST_CONSOLE_IDLE_MINUTES"):
        Settings()


def test_web_hardening_sign_out_everywhere(app, db):
    here, there, other = TestClient(app), TestClient(app), TestClient(app)
    page = sign_in(here, "manager@agency.fr")
    sign_in(there, "manager@agency.fr")
    sign_in(other, "admin@agency.fr")
    account = here.get("/account")
    assert account.status_code == 200 and account.text.count("<tr>") == 3  # head + 2 sessions
    r = here.post("/account/sign-out-everywhere", data={"csrf": csrf_of(page.text)})
    assert r.url.path == "/login" and "Signed out everywhere" in r.text
    assert here.get("/planning").url.path == "/login"
    assert there.get("/planning").url.path == "/login"
    assert other.get("/planning").url.path == "/planning"  # someone else's stays
    [entry] = audited(db, "sign_out_everywhere")
    assert entry.who == "user:manager@agency.fr" and entry.detail == {"sessions_ended": 2}


def test_web_hardening_the_account_page_lists_open_sessions_only(app, db):
    """A session idle past the timeout, its row not yet deleted (its cookie never came back),
    is no open session: the page once listed it."""
    here, there = TestClient(app), TestClient(app)
    sign_in(here, "manager@agency.fr")
    sign_in(there, "manager@agency.fr")
    idle = timedelta(minutes=app.state.settings.console_idle_minutes)
    with db() as s:
        old = s.scalars(select(ConsoleSession).order_by(ConsoleSession.id)).first().id
    last_seen(db, idle + timedelta(minutes=10), ConsoleSession.id == old)
    account = there.get("/account")
    assert account.status_code == 200 and account.text.count("<tr>") == 2  # head + 1 session
    assert rows_of(db, "manager@agency.fr") == 2  # the ended row waits for its deletion


def test_web_hardening_sign_out_everywhere_needs_the_csrf_token(as_role, db):
    c = as_role("manager")
    assert c.post("/account/sign-out-everywhere", data={"csrf": "forged"}).status_code == 403
    assert rows_of(db, "manager@agency.fr") == 1


def test_web_hardening_a_new_password_ends_the_other_sessions(app, db):
    here, there = TestClient(app), TestClient(app)
    page = sign_in(here, "manager@agency.fr")
    sign_in(there, "manager@agency.fr")
    token = csrf_of(page.text)
    r = here.post("/account/password", data={"csrf": token, "current": "wrong password",
                                              "password": "a new long password",
                                              "again": "a new long password"})
    assert r.status_code == 400 and "current password is wrong" in r.text
    assert there.get("/planning").url.path == "/planning"  # nothing changed
    r = here.post("/account/password", data={"csrf": token, "current": PASSWORD,
                                              "password": "a new long password",
                                              "again": "a new long password"})
    assert r.url.path == "/account" and "Password changed" in r.text
    assert here.get("/planning").url.path == "/planning"  # this one stays
    assert there.get("/planning").url.path == "/login"
    assert sign_in(TestClient(app), "manager@agency.fr", "a new long password"
                   ).status_code == 200
    assert audited(db, "passwd")[0].detail == {"sessions_ended": 1}


def test_web_hardening_the_current_password_is_not_guessed_on_the_account_page(as_role, db):
    c = as_role("manager")
    token = csrf_of(c.get("/account").text)
    data = {"csrf": token, "password": "a new long password", "again": "a new long password"}
    for _ in range(5):  # the sign-in's limit, on the same counter
        assert c.post("/account/password", data={**data, "current": "guess"}).status_code == 400
    r = c.post("/account/password", data={**data, "current": PASSWORD})
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert "retry-after" in r.headers
    assert [a.target for a in audited(db, "lockout")] == ["console:manager@agency.fr"]
    assert sign_in(TestClient(c.app), "manager@agency.fr").status_code == 429  # locked too
    assert audited(db, "passwd") == []


def test_web_hardening_user_disable_ends_sessions_at_once(app, as_role, db, monkeypatch, capsys):
    c = as_role("manager")
    url = str(app.state.settings.database_url)
    assert run(["user", "disable", "Manager@agency.fr", "--db", url], "", monkeypatch) == 0
    assert "disabled: cannot sign in; 1 open session(s) ended" in capsys.readouterr().out
    assert rows_of(db, "manager@agency.fr") == 0
    assert c.get("/planning").url.path == "/login"
    assert sign_in(TestClient(app), "manager@agency.fr").status_code == 401
    [entry] = audited(db, "disable")
    assert entry.target == "user:manager@agency.fr" and entry.who.startswith("cli:")
    assert run(["user", "enable", "manager@agency.fr", "--db", url], "", monkeypatch) == 0
    assert sign_in(TestClient(app), "manager@agency.fr").status_code == 200
    assert len(audited(db, "enable")) == 1
    with pytest.raises(TelegestError, match="no user nobody@agency.fr"):
        run(["user", "disable", "nobody@agency.fr", "--db", url], "", monkeypatch)


def test_web_hardening_ended_sessions_are_purged_at_the_next_sign_in(app, as_role, db):
    as_role("manager")
    last_seen(db, timedelta(hours=1))
    sign_in(TestClient(app), "admin@agency.fr")
    assert rows_of(db, "manager@agency.fr") == 0 and rows_of(db, "admin@agency.fr") == 1


def test_web_hardening_console_secret_from_the_environment(monkeypatch):
    monkeypatch.setattr(auth, "_SECRET", None)
    monkeypatch.setenv("TELEGEST_CONSOLE_SECRET", "k" * 16 + "Zq3vP9xW2mL7nB4c")
    assert auth.unsign(auth.sign({"csrf": "x"})) == {"csrf": "x"}
    monkeypatch.setattr(auth, "_SECRET", None)
    monkeypatch.setenv("TELEGEST_CONSOLE_SECRET", "changeme")
    with pytest.raises(RuntimeError, match="at least 32"):
        auth.sign({})


@pytest.mark.postgres
def test_web_hardening_sessions_on_postgresql(pg_database_url):
    """The same table and statements on PostgreSQL: sign-in, idle end, sign out everywhere."""
    from fleet.api.app import create_app
    from fleet.console.users import create_user
    from fleet.db import make_engine, session_factory

    app = create_app(Settings(database_url=pg_database_url))
    engine = make_engine(pg_database_url)
    db = session_factory(engine)
    with db() as s:
        create_user(s, "manager@agency.fr", "manager", PASSWORD)
        s.commit()
    try:
        here, there, idle = TestClient(app), TestClient(app), TestClient(app)
        page = sign_in(here, "manager@agency.fr")
        sign_in(there, "manager@agency.fr")
        sign_in(idle, "manager@agency.fr")
        last_seen(db, timedelta(minutes=31), ConsoleSession.token_hash == hashlib.sha256(
            idle.cookies[SESSION_COOKIE].encode()).hexdigest())
        assert idle.get("/account").url.path == "/login"
        assert rows_of(db, "manager@agency.fr") == 2
        here.post("/account/sign-out-everywhere", data={"csrf": csrf_of(page.text)})
        assert there.get("/account").url.path == "/login"
        assert rows_of(db, "manager@agency.fr") == 0
    finally:
        engine.dispose()
