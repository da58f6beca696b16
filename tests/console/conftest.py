"""Fixtures of the console tests: the demo agency, one account per role, a signed-in client.

The accounts read the console in English (users.language = en): the tests match English text;
tests/console/test_languages.py covers French, the default, and the choice itself."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from fleet.db import make_engine, session_factory

PASSWORD = "correct horse battery"
ROLES = ("admin", "manager", "technician")


@pytest.fixture
def app(demo):
    from fleet.api.app import create_app
    from fleet.config import Settings
    from fleet.console.users import create_user

    db_url, info = demo
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        for role in ROLES:
            create_user(s, f"{role}@agency.fr", role, PASSWORD,
                        organisation_id=info["organisation_id"], language="en")
        s.commit()
    engine.dispose()
    return create_app(Settings(database_url=db_url))


@pytest.fixture
def db(demo):
    engine = make_engine(demo[0])
    factory = session_factory(engine)
    yield factory
    engine.dispose()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def form_id_of(html: str) -> str:
    return re.search(r'name="form_id" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD):
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "email": email, "password": password,
                                       "next": "/board"})


def choose_language(client: TestClient, language: str) -> None:
    """The signed-in person picks the console's language on /account ("" for the browser's)."""
    token = csrf_of(client.get("/account").text)
    r = client.post("/account/language", data={"csrf": token, "language": language})
    assert r.status_code == 200 and r.url.path == "/account", r.text


@pytest.fixture
def as_role(app):
    """as_role("manager") -> a TestClient signed in with that role, reading English;
    as_role("manager", "fr") reads French."""
    clients = []

    def make(role: str, language: str = "en") -> TestClient:
        c = TestClient(app)
        clients.append(c)
        r = sign_in(c, f"{role}@agency.fr")
        assert r.status_code == 200, r.text
        if language != "en":
            choose_language(c, language)
        return c
    yield make
    for c in clients:
        c.close()
