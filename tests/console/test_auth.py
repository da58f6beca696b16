"""Sign-in, sessions, CSRF: what the console refuses and why."""
from __future__ import annotations

import time
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fleet.console import sessions
from fleet.console.auth import SESSION_COOKIE, sign
from fleet.console.sessions import Lifetimes
from fleet.console.users import set_password
from fleet.models import AuditLog, ConsoleSession, User, Visit
from fleet.types import utcnow
from tests.console.conftest import PASSWORD, csrf_of, form_id_of, sign_in


def test_pages_ask_for_a_sign_in_first(app):
    c = TestClient(app)
    r = c.get("/planning")
    assert r.url.path == "/login" and "next=/planning" in str(r.url)
    assert c.get("/board/rows", follow_redirects=False).status_code == 401


def test_password_sign_in_and_out(app):
    c = TestClient(app)
    r = sign_in(c, "Manager@Agency.fr")
    assert r.url.path == "/board" and "Sign out" in r.text
    r = c.post("/logout", data={"csrf": csrf_of(r.text)})
    assert r.url.path == "/login" and "Signed out" in r.text
    assert c.get("/board").url.path == "/login"


def test_wrong_password_is_refused_with_a_clear_message(app, db):
    c = TestClient(app)
    r = sign_in(c, "manager@agency.fr", "not the password")
    assert r.status_code == 401
    assert "Adresse ou mot de passe incorrect" in r.text  # before sign-in: French
    assert sign_in(c, "nobody@agency.fr").status_code == 401
    with db() as s:
        # the existing account's refusal only: a made-up address is not a database write
        assert s.scalar(select(func.count()).where(AuditLog.action == "login_refused")) == 1


def test_login_form_without_its_token_is_refused(app):
    c = TestClient(app)
    r = c.post("/login", data={"email": "manager@agency.fr", "password": PASSWORD})
    assert r.status_code == 403 and "périmé" in r.text
    c.get("/login")  # a pre-login cookie, but the field forged
    r = c.post("/login", data={"csrf": "forged", "email": "manager@agency.fr",
                               "password": PASSWORD})
    assert r.status_code == 403


def test_api_key_sign_in_still_works(app, db):
    from fleet.keys import create_api_key

    with db() as s:
        key = create_api_key(s, "manager", "board")
        s.commit()
    c = TestClient(app)
    token = csrf_of(c.get("/login").text)
    assert c.post("/login", data={"csrf": token, "key": "tg_nope"}).status_code == 401
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"csrf": token, "key": key})
    assert r.url.path == "/board" and r.status_code == 200


def test_a_post_without_the_csrf_token_is_refused_and_does_nothing(as_role, db):
    c = as_role("manager")
    form = c.get("/planning/visits/new").text
    with db() as s:
        client_id, caregiver_id = s.execute(select(Visit.client_id, Visit.caregiver_id)).first()
        before = s.scalar(select(func.count()).select_from(Visit))
    data = {"form_id": form_id_of(form), "client_id": client_id, "caregiver_id": caregiver_id,
            "day": "2030-01-07", "start": "09:00", "end": "10:00"}
    r = c.post("/planning/visits", data=data)
    assert r.status_code == 403 and "Form refused" in r.text
    r = c.post("/planning/visits", data={**data, "csrf": "someone-elses-token"})
    assert r.status_code == 403
    other = TestClient(c.app)  # another person's valid token is not this session's
    other_token = csrf_of(sign_in(other, "admin@agency.fr").text)
    assert c.post("/planning/visits", data={**data, "csrf": other_token}).status_code == 403
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Visit)) == before


def test_an_expired_session_goes_back_to_sign_in_with_a_message(app, db):
    lifetimes = Lifetimes.of(app.state.settings)
    with db() as s:
        user = s.scalars(select(User).where(User.email == "manager@agency.fr")).one()
        cookie, _ = sessions.start(s, lifetimes, user=user,
                                   now=utcnow() - lifetimes.absolute - timedelta(seconds=1))
        s.commit()
    c = TestClient(app, cookies={SESSION_COOKIE: cookie})
    r = c.get("/planning")
    assert r.url.path == "/login" and "expired=1" in str(r.url)
    assert "Votre session a expiré" in r.text and "Your session" not in r.text
    assert c.get("/board/rows", follow_redirects=False).status_code == 401


def test_a_forged_or_outdated_session_is_refused(app, db):
    with db() as s:
        user = s.scalars(select(User).where(User.email == "manager@agency.fr")).one()
        cookie, _ = sessions.start(s, Lifetimes.of(app.state.settings), user=user)
        s.commit()
    tampered = cookie[:-2] + ("xx" if not cookie.endswith("xx") else "yy")
    assert TestClient(app, cookies={SESSION_COOKIE: tampered}).get(
        "/planning").url.path == "/login"
    # a cookie signed with the console's secret is no session: only a row makes one
    assert TestClient(app, cookies={SESSION_COOKIE: sign({"uid": user.id, "csrf": "x",
                                                          "exp": time.time() + 60})}).get(
        "/planning").url.path == "/login"
    ok = TestClient(app, cookies={SESSION_COOKIE: cookie})
    assert ok.get("/planning").url.path == "/planning"
    with db() as s:  # a new password closes the open sessions
        set_password(s, "manager@agency.fr", "another long password")
        s.commit()
    assert ok.get("/planning").url.path == "/login"


def test_a_deactivated_user_is_signed_out(as_role, db):
    c = as_role("manager")
    with db() as s:
        s.scalars(select(User).where(User.email == "manager@agency.fr")).one().active = False
        s.commit()
    assert c.get("/planning").url.path == "/login"
    with db() as s:  # its session row went with it
        assert s.scalar(select(func.count()).select_from(ConsoleSession)) == 0
    assert sign_in(TestClient(c.app), "manager@agency.fr").status_code == 401


def test_passwords_are_argon2(app, db):
    with db() as s:
        user = s.scalars(select(User).where(User.email == "admin@agency.fr")).one()
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
