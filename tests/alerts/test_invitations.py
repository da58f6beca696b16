"""Staff invitations and password resets (fleet.invitations, /users, /invite/<token>): the link
goes out by e-mail through a real SMTP server, works once, within its validity, and signs the
person in; who may invite whom; a reset keeps the old password until the link is used."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet import invitations, outbox
from fleet.console.users import create_user, find_user
from fleet.db import session_factory
from fleet.invitations import InvitationError, Inviter
from fleet.models import AuditLog, Invitation, Organisation
from fleet.types import utcnow
from tests.alerts.conftest import smtp_settings
from tests.console.conftest import csrf_of, sign_in

PASSWORD = "correct horse battery"
NEW = "staple violet lantern 42"


@pytest.fixture
def agency(engine, session):
    a, b = Organisation(name="Soins du Val"), Organisation(name="Aide Plus")
    session.add_all([a, b])
    session.flush()
    # the staff read the console in English (users.language); a new coordinator has no setting
    create_user(session, "chef@val.fr", "manager", PASSWORD, organisation_id=a.id,
                language="en")
    create_user(session, "admin@val.fr", "admin", PASSWORD, organisation_id=a.id,
                language="en")
    create_user(session, "tech@val.fr", "technician", PASSWORD, organisation_id=a.id,
                language="en")
    create_user(session, "chef@aideplus.fr", "manager", PASSWORD, organisation_id=b.id,
                language="en")
    session.commit()
    return a.id, b.id


@pytest.fixture
def console(database_url, engine, agency, smtp):
    from fleet.api.app import create_app

    settings = smtp_settings(database_url, smtp, public_url="https://fleet.val.fr")
    app = create_app(settings)
    clients = []

    def make(email: str | None = None) -> TestClient:
        c = TestClient(app, base_url="https://fleet.val.fr")
        clients.append(c)
        if email:
            assert sign_in(c, email).status_code == 200
        return c

    def deliver() -> list:
        outbox.dispatch_due(session_factory(engine), settings, utcnow() + timedelta(seconds=1))
        return smtp.handler.messages

    make.deliver = deliver
    yield make
    for c in clients:
        c.close()


def link_in(mail) -> str:
    return re.search(r"https://fleet\.val\.fr(/invite/tgi_[\w-]+)", mail.get_content()).group(1)


def test_a_manager_invites_a_coordinator_who_sets_her_password_and_is_signed_in(console):
    chef = console("chef@val.fr")
    page = chef.get("/users")
    assert page.status_code == 200 and "admin" not in re.findall(
        r'<option value="(\w+)"', page.text)  # a manager invites managers and technicians
    r = chef.post("/users/invite", data={"csrf": csrf_of(page.text), "email": "Lea@Val.fr",
                                        "role": "manager"})
    assert r.status_code == 200 and "Invitation sent" in r.text and "lea@val.fr" in r.text
    (mail,) = console.deliver()
    assert mail["To"] == "lea@val.fr" and "Invitation" in mail["Subject"]
    path = link_in(mail)
    lea = console()
    form = lea.get(path)
    assert form.status_code == 200 and "lea@val.fr" in form.text
    assert form.headers["Cache-Control"] == "no-store"
    short = lea.post(path, data={"password": "short", "again": "short"})
    assert short.status_code == 422 and "au moins 12 caractères" in short.text
    r = lea.post(path, data={"password": NEW, "again": NEW})
    # she has no language setting and her browser asks for none: French, the default
    assert r.status_code == 200 and r.url.path == "/board" and "Bienvenue" in r.text
    assert lea.get("/account").status_code == 200
    # once only
    again = console().post(path, data={"password": NEW, "again": NEW})
    assert again.status_code == 410 and "déjà servi" in again.text
    # she signs in with it, as a manager of the agency
    assert sign_in(console(), "lea@val.fr", NEW).url.path == "/board"


def test_refusals_change_nothing(console, engine, agency):
    a, b = agency
    chef = console("chef@val.fr")
    token = csrf_of(chef.get("/users").text)
    for data, why in (({"email": "tech@val.fr", "role": "technician"}, "already has an account"),
                      ({"email": "not-an-address", "role": "manager"}, "not an e-mail"),
                      ({"email": "boss@val.fr", "role": "admin"}, "may not invite")):
        r = chef.post("/users/invite", data={"csrf": token, **data})
        assert r.status_code == 422 and why in r.text
    with session_factory(engine)() as s:
        assert s.scalars(select(Invitation)).all() == []
        # another agency's manager: the model refuses too
        with pytest.raises(InvitationError, match="may not invite"):
            invitations.invite(s, Inviter("user:chef@aideplus.fr", "manager", b), "x@val.fr",
                               "manager", a, lambda p: p)
    assert console.deliver() == []
    # technicians have no staff page; a forged form without the session's token does nothing
    assert console("tech@val.fr").get("/users").status_code == 403
    assert chef.post("/users/invite", data={"csrf": "forged", "email": "z@val.fr",
                                            "role": "manager"}).status_code == 403


def test_links_expire_and_a_newer_one_voids_the_older(engine, agency):
    a, _ = agency
    boss = Inviter("user:admin@val.fr", "admin", a)
    with session_factory(engine)() as s:
        t0 = utcnow()
        first = invitations.invite(s, boss, "new@val.fr", "technician", a, lambda p: p, now=t0)
        second = invitations.invite(s, boss, "new@val.fr", "technician", a, lambda p: p, now=t0)
        s.commit()
        with pytest.raises(InvitationError, match="expired"):
            invitations.find(s, first, now=t0 + timedelta(seconds=1))
        assert invitations.find(s, second, now=t0 + timedelta(days=6)).email == "new@val.fr"
        with pytest.raises(InvitationError, match="expired"):
            invitations.accept(s, second, NEW, NEW, now=t0 + timedelta(days=7, seconds=1))
        with pytest.raises(InvitationError, match="not valid"):
            invitations.find(s, "tgi_made-up")
        assert find_user(s, "new@val.fr") is None


def test_reset_disable_and_enable_from_the_staff_page(console, engine):
    tech = console("tech@val.fr")
    chef = console("chef@val.fr")
    page = chef.get("/users").text
    tech_id = re.search(r'action="/users/(\d+)/reset"', page.split('data-user="tech@val.fr"')[1])
    r = chef.post(f"/users/{tech_id.group(1)}/reset", data={"csrf": csrf_of(page)})
    assert "Password-reset link sent" in r.text
    (mail,) = console.deliver()
    assert mail["To"] == "tech@val.fr"
    # the old password works until the link is used; then the new one only, sessions ended
    assert tech.get("/devices").status_code == 200
    r = console().post(link_in(mail), data={"password": NEW, "again": NEW})
    assert r.url.path == "/devices"  # a technician lands on the devices
    assert tech.get("/devices").url.path == "/login"
    assert sign_in(console(), "tech@val.fr").status_code == 401
    # disabled: every session ends, the password no longer signs in; enabled again: it does
    signed = console()
    assert sign_in(signed, "tech@val.fr", NEW).status_code == 200
    r = chef.post(f"/users/{tech_id.group(1)}/disable", data={"csrf": csrf_of(page)})
    assert "Account disabled" in r.text
    assert signed.get("/devices").url.path == "/login"
    assert sign_in(console(), "tech@val.fr", NEW).status_code == 401
    r = chef.post(f"/users/{tech_id.group(1)}/reset", data={"csrf": csrf_of(page)})
    assert r.status_code == 422 and "enable the account first" in r.text
    chef.post(f"/users/{tech_id.group(1)}/enable", data={"csrf": csrf_of(page)})
    assert sign_in(console(), "tech@val.fr", NEW).status_code == 200
    with session_factory(engine)() as s:
        actions = [e.action for e in s.scalars(select(AuditLog).where(
            AuditLog.target == "user:tech@val.fr").order_by(AuditLog.id))]
    assert actions == ["create", "password_reset", "passwd", "disable", "enable"]


def test_one_agency_never_manages_another(console, engine):
    chef = console("chef@val.fr")
    page = chef.get("/users").text
    assert "chef@aideplus.fr" not in page
    with session_factory(engine)() as s:
        other = find_user(s, "chef@aideplus.fr").id
        mine = find_user(s, "chef@val.fr").id
    assert chef.post(f"/users/{other}/disable", data={"csrf": csrf_of(page)}).status_code == 404
    assert chef.post(f"/users/{mine}/disable", data={"csrf": csrf_of(page)}).status_code == 403
    assert sign_in(console(), "chef@aideplus.fr").status_code == 200
