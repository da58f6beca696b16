"""Fixtures of the alert tests: a migrated SQLite database with one organisation and two
active readers."""
from __future__ import annotations

import pytest

from fleet.models import Device, Organisation


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
