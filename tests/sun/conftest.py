"""An agency with a phone and a reader, a visit at 10:00 Paris, and a PN532 simulator."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from fleet.models import Caregiver, Client, Device, Organisation, Visit
from tests.field.conftest import pn532_sim  # noqa: F401 (the PN532 simulator fixture)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # 10:00 in Paris
TS = int(NOW.timestamp())


def make_agency(session) -> dict:
    org = Organisation(name="Aide à domicile du Val", timezone="Europe/Paris")
    session.add(org)
    session.flush()
    client = Client(organisation_id=org.id, name="Mme Durand", address="1 rue des Lilas")
    other = Client(organisation_id=org.id, name="M. Petit", address="2 place du Marché")
    alice = Caregiver(organisation_id=org.id, name="Alice Martin", phone="0601020304")
    session.add_all([client, other, alice])
    session.flush()
    session.add_all([
        Device(ident="p1", kind="phone", organisation_id=org.id, caregiver_id=alice.id),
        Device(ident="r1", kind="reader", organisation_id=org.id, client_id=client.id)])
    visit = Visit(organisation_id=org.id, client_id=client.id, caregiver_id=alice.id,
                  planned_start=NOW, planned_end=NOW + timedelta(hours=1))
    session.add(visit)
    session.commit()
    return {"org": org, "client": client, "other": other, "alice": alice, "visit": visit}


def clock(*events: dict, now: int = TS) -> bytes:
    return json.dumps({"now": now, "events": list(events)}).encode()


def read_event(seq: int, url: str, dir: str = "in", ts: int = TS, **extra) -> dict:
    return {"seq": seq, "tag": url, "dir": dir, "method": "nfc", "ts": ts, "tq": "synced",
            **extra}
