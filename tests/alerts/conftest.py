"""Fixtures of the alert tests: a migrated SQLite database with one organisation and two
active readers; a real SMTP server in-process (aiosmtpd) and settings pointing at it."""
from __future__ import annotations

import email
from email import policy

import pytest

from fleet.models import Device, Organisation


@pytest.fixture
def pg(pg_database_url):
    """(session factory, organisation id) on the emptied, migrated PostgreSQL database."""
    from fleet.db import make_engine, migrate, session_factory

    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    sessions = session_factory(engine)
    with sessions() as s:
        org = Organisation(name="Soins du Val")
        s.add(org)
        s.commit()
        org_id = org.id
    yield sessions, org_id
    engine.dispose()


@pytest.fixture
def fleet(session):
    org = Organisation(name="Soins du Val")
    session.add(org)
    session.flush()
    devices = [Device(ident=f"r{i}", kind="reader", organisation_id=org.id, status="active")
               for i in (1, 2)]
    session.add_all(devices)
    session.commit()
    return {"org": org, "devices": devices}


class Mailbox:
    """An aiosmtpd handler: keeps what it accepts, or answers `refuse` (e.g. "451 busy") to
    every message."""

    def __init__(self) -> None:
        self.messages: list = []
        self.refuse: str | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        if self.refuse:
            return self.refuse
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp():
    """A real SMTP server in this process (aiosmtpd on a free port): `.handler.messages`."""
    from aiosmtpd.controller import Controller

    from tools.broker import free_port

    controller = Controller(Mailbox(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


def smtp_settings(database_url: str, smtp, **kw):
    from fleet.config import Settings

    return Settings(database_url=database_url, smtp_host=smtp.hostname, smtp_port=smtp.port,
                    smtp_from="alertes@soins-du-val.fr", smtp_starttls=False, **kw)
