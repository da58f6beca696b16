"""Fixtures of the fleet tests: a migrated database, a session, a small agency."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from fleet.models import Badge, Caregiver, Client, Device, Organisation

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # 10:00 in Paris


def make_agency(session) -> dict:
    """One organisation, two clients with a reader each, two caregivers with a card each."""
    org = Organisation(name="Aide à domicile du Val", timezone="Europe/Paris")
    session.add(org)
    session.flush()
    c1 = Client(organisation_id=org.id, name="Mme Durand", address="1 rue des Lilas")
    c2 = Client(organisation_id=org.id, name="M. Petit", address="2 place du Marché")
    g1 = Caregiver(organisation_id=org.id, name="Alice Martin", phone="0601020304")
    g2 = Caregiver(organisation_id=org.id, name="Bruno Leroy", phone="0605060708")
    session.add_all([c1, c2, g1, g2])
    session.flush()
    session.add_all([
        Badge(organisation_id=org.id, kind="caregiver_card", uid="04A1B2C3D4E5F6",
              caregiver_id=g1.id),
        Badge(organisation_id=org.id, kind="caregiver_card", uid="04A1B2C3D4E5F7",
              caregiver_id=g2.id),
        Device(ident="r1", kind="reader", organisation_id=org.id, client_id=c1.id),
        Device(ident="r2", kind="reader", organisation_id=org.id, client_id=c2.id),
    ])
    session.commit()
    return {"org": org, "clients": [c1, c2], "caregivers": [g1, g2]}


@pytest.fixture
def agency(session):
    """make_agency on the test's SQLite database."""
    return make_agency(session)


@pytest.fixture
def pg_session(pg_database_url):
    """A session on the PostgreSQL test database, emptied and migrated."""
    from fleet.db import make_engine, migrate, session_factory

    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()

TS = int(NOW.timestamp())


def _event(seq, badge="04A1B2C3D4E5F6", dir="in", ts=TS, **extra):
    ev = {"seq": seq, "badge": badge, "dir": dir, "method": "nfc", "ts": ts, "tq": "synced"}
    ev.update(extra)
    return ev


def _clock(*events, now=TS) -> bytes:
    import json

    return json.dumps({"now": now, "events": list(events)}).encode()


@pytest.fixture
def event():
    """event(seq, badge=..., dir=..., ts=..., **extra) -> one clock event dict."""
    return _event


@pytest.fixture
def clock():
    """clock(*events, now=...) -> an up/clock payload."""
    return _clock
