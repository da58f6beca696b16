"""The office side on PostgreSQL: a late arrival on the device's chosen visit, a forgotten
departure corrected with COD, the month validated and reopened (TELEGEST_TEST_DATABASE_URL)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from fleet.corrections import CorrectionRefused, correct
from fleet.db import make_engine, migrate, session_factory
from fleet.ingest import ingest_batch
from fleet.matching import match_pending
from fleet.models import (AuditLog, Badge, Caregiver, Client, Device, Organisation, Visit,
                          VisitCorrection, VisitRecord)
from fleet.review import review_items
from fleet.validation import is_locked, reopen_month, validate_month

from .conftest import NOW, TS

pytestmark = pytest.mark.postgres
H = timedelta(hours=1)


def test_correct_and_validate_on_postgresql(pg_database_url):
    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    with session_factory(engine)() as s:
        org = Organisation(name="Val d'Aide", overrun_policy="cap")
        s.add(org)
        s.flush()
        client, alice = Client(organisation_id=org.id, name="Mme Durand"), \
            Caregiver(organisation_id=org.id, name="Alice")
        s.add_all([client, alice])
        s.flush()
        s.add_all([Badge(organisation_id=org.id, kind="caregiver_card", uid="04A1B2C3D4E5F6",
                         caregiver_id=alice.id),
                   Device(ident="r1", kind="reader", organisation_id=org.id,
                          client_id=client.id)])
        first = Visit(organisation_id=org.id, client_id=client.id, caregiver_id=alice.id,
                      planned_start=NOW, planned_end=NOW + H)
        second = Visit(organisation_id=org.id, client_id=client.id, caregiver_id=alice.id,
                       planned_start=NOW + 2 * H, planned_end=NOW + 3 * H)
        s.add_all([first, second])
        s.commit()
        # 40 minutes late for the first visit, and the reader says which one it is
        ev = {"seq": 1, "badge": "04A1B2C3D4E5F6", "dir": "in", "method": "nfc",
              "ts": TS + 40 * 60, "tq": "synced", "visit": first.id}
        ingest_batch(s, [("tg/v1/r1/up/clock",
                          json.dumps({"now": TS + 40 * 60, "events": [ev]}).encode(),
                          NOW + timedelta(minutes=40))])
        s.commit()
        assert match_pending(s)["matched"] == 1
        s.commit()
        rec = s.scalars(select(VisitRecord).where(VisitRecord.visit_id == first.id)).one()
        assert rec.actual_start == NOW + timedelta(minutes=40) and rec.retained_end is None

        fix = correct(s, first.id, code=None, arrival=None, departure=NOW + 2 * H,
                      why="forgot to tap out", who="coord", role="manager",
                      organisation_id=org.id)
        s.commit()
        s.expire_all()
        assert fix.code == "COD"
        assert (rec.retained_start, rec.retained_end) == (NOW + timedelta(minutes=40),
                                                          NOW + 2 * H)
        assert rec.actual_end is None and rec.correction_code == "COD"
        items = review_items(s, org, NOW - 2 * H, NOW + 22 * H)
        assert [(i.kind, i.visit_id) for i in items] == [("missed", second.id)]

        mv = validate_month(s, org, "2026-11", "coord", "manager")
        s.commit()
        s.expire_all()
        assert mv.visits == 1 and is_locked(rec)
        with pytest.raises(CorrectionRefused) as e:
            correct(s, first.id, code="SUP", arrival=None, departure=None, why="x",
                    who="coord", role="manager", organisation_id=org.id)
        assert e.value.status == 409
        s.rollback()
        reopen_month(s, org, "2026-11", "boss", "admin", "a late sheet")
        s.commit()
        s.expire_all()
        assert not is_locked(rec)
        assert len(s.scalars(select(VisitCorrection)).all()) == 1
        assert [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))] == [
            "correct", "validate", "reopen"]
    engine.dispose()
