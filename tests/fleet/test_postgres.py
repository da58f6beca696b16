"""The same schema, ingest and matching against PostgreSQL (TELEGEST_TEST_DATABASE_URL)."""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from fleet.db import make_engine, migrate, session_factory
from fleet.ingest import ingest_batch, ingest_stats
from fleet.matching import match_pending
from fleet.models import Badge, ClockEvent, Device, Organisation, VisitRecord
from fleet.demo import seed_demo

from .conftest import NOW, TS

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_sessions(pg_database_url):
    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    yield session_factory(engine)
    engine.dispose()


def test_migration_matches_models(pg_database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from fleet.models import Base

    migrate(pg_database_url)
    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.exec_driver_sql(
            "SELECT data_type FROM information_schema.columns WHERE table_name='clock_events'"
            " AND column_name='device_ts'").scalar() == "timestamp with time zone"
    engine.dispose()


def _msg(ident, *seqs, badge="04A1B2C3D4E5F6", dir="in", ts=TS):
    evs = [{"seq": s, "badge": badge, "dir": dir, "method": "nfc", "ts": ts + s, "tq": "synced"}
           for s in seqs]
    return (f"tg/v1/{ident}/up/clock", json.dumps({"now": TS, "events": evs}).encode(), NOW)


def _readers(session, org_name: str, *idents: str) -> None:
    """An organisation with a reader per ident, committed."""
    org = Organisation(name=org_name)
    session.add(org)
    session.flush()
    session.add_all([Device(ident=i, kind="reader", organisation_id=org.id) for i in idents])
    session.commit()


def test_ingest_on_conflict_gaps_and_replays(pg_sessions):
    S = pg_sessions
    with S() as s:
        _readers(s, "pg", "p1")
    counters = Counter()
    with S() as s:
        acks = ingest_batch(s, [_msg("p1", 1, 2), _msg("p1", 4), _msg("p1", 2)],
                            counters=counters)
        s.commit()
    assert [a.ack for a in acks] == [2] and counters["seq_gap"] == 1
    assert counters["duplicate"] == 1
    # a concurrent worker stored seq 3 already: ON CONFLICT DO NOTHING keeps one row
    with S() as s:
        s.execute(ClockEvent.__table__.insert().values(
            device_id=s.scalar(select(Device.id)), seq=3, dir="in", method="nfc",
            badge_uid="04A1B2C3D4E5F6", device_ts=NOW, received_at=NOW, time_quality="synced",
            clock_offset_s=0, raw={"seq": 3, "badge": "04A1B2C3D4E5F6", "dir": "in",
                                   "method": "nfc", "ts": TS + 3, "tq": "synced"},
            match_status="pending"))
        s.commit()
    with S() as s:
        acks = ingest_batch(s, [_msg("p1", 3, 5), _msg("p1", 1, dir="out")])
        s.commit()
        assert acks[0].ack == 5 and acks[0].rejected == [{"seq": 1, "reason": "replay"}]
        assert s.scalar(select(func.count()).select_from(ClockEvent)) == 5
        assert s.scalar(select(Device.acked_seq)) == 5
        assert ingest_stats(s)["rejections"] == {"replay": 1}


def test_nul_in_a_string_is_rejected_alone(pg_sessions):
    """PostgreSQL's text refuses NUL: without the check the whole batch failed at every resend."""
    from .test_ingest import nul_does_not_poison_the_batch

    with pg_sessions() as s:
        _readers(s, "pg nul", "n1", "n2")
        nul_does_not_poison_the_batch(s, "n1", "n2")


def test_matching_with_the_demo(pg_sessions):
    S = pg_sessions
    now = NOW + timedelta(hours=2)
    with S() as s:
        info = seed_demo(s, now.date(), now)
        s.commit()
    visit = next(v for v in info["visits"] if v["when"] == "now")
    with S() as s:
        ingest_batch(s, [_msg(visit["device"], 1, badge=visit["badge"], ts=visit["start"] + 60),
                         _msg(visit["device"], 2, badge=visit["badge"], dir="out",
                              ts=visit["end"])])
        s.commit()
    with S() as s:
        counts = match_pending(s)
        s.commit()
        assert counts["matched"] == 2
        rec = s.scalars(select(VisitRecord)).one()
        assert rec.visit_id == visit["id"] and rec.status == "done"
        assert rec.actual_start.tzinfo is not None
    with S() as s:
        assert match_pending(s) == {}
        assert s.scalar(select(func.count()).select_from(Badge)) == 9



def test_two_matchers_at_once_never_take_the_same_events(pg_sessions):
    """Two workers matching at once: the second skips the rows the first holds (FOR UPDATE
    SKIP LOCKED) instead of matching them again or waiting (mutation survivor, #14 item 12)."""
    S = pg_sessions
    with S() as s:
        _readers(s, "pg two", "m1")
        ingest_batch(s, [_msg("m1", 1, 2, 3)])
        s.commit()
    with S() as first, S() as second:
        counts = match_pending(first)  # not committed yet: its rows stay locked
        assert counts["anomaly"] + counts["ignored"] == 3
        second.execute(text("SET LOCAL lock_timeout = '2s'"))
        assert match_pending(second) == {}
        first.commit()
        second.rollback()
    with S() as s:
        statuses = s.scalars(select(ClockEvent.match_status)).all()
        assert len(statuses) == 3 and "pending" not in statuses
        assert match_pending(s) == {}


def test_bulk_insert_stores_what_an_executemany_stores(pg_sessions):
    """fleet.bulk sends PostgreSQL one JSON document: the rows read back exactly as
    SQLAlchemy's executemany stores them (JSON null, a list, non-ASCII text, microseconds),
    and a row that would duplicate the unique key is skipped."""
    from fleet.bulk import insert_rows

    S = pg_sessions
    with S() as s:
        _readers(s, "pg bulk", "b1")
        dev = s.scalar(select(Device.id))
    received = NOW + timedelta(microseconds=123457)

    def row(seq, **kw):
        ev = {"seq": seq, "tag": "Mme Hélène", "dir": "in", "method": "manual",
              "reason": "lecteur en panne, « oublié »", "ts": TS, "tq": "rtc", **kw}
        return {"device_id": dev, "seq": seq, "badge_uid": None, "tag": ev["tag"],
                "dir": "in", "method": "manual", "reason": ev["reason"], "device_ts": NOW,
                "received_at": received, "time_quality": "rtc", "clock_offset_s": -3,
                "pos": ev.get("pos"), "raw": ev, "visit_id": None, "match_status": "pending"}

    pos = [45.76, 4.83, 12.5]
    with S() as s:
        s.execute(ClockEvent.__table__.insert(), [row(1), row(2, pos=pos)])  # executemany
        insert_rows(s, ClockEvent.__table__, [row(11), row(12, pos=pos)])
        insert_rows(s, ClockEvent.__table__, [row(11, dir="out"), row(13)],
                    skip_conflicts_on=["device_id", "seq"])
        s.commit()
    with S() as s:
        got = {seq: rest for seq, *rest in s.execute(text(
            "SELECT seq, tag, reason, device_ts, received_at, clock_offset_s, pos IS NULL, "
            "pos::text, match_status, raw::text FROM clock_events ORDER BY seq"))}
    assert sorted(got) == [1, 2, 11, 12, 13]
    for a, b in ((1, 11), (2, 12)):
        assert got[b][:-1] == got[a][:-1]
        assert got[b][-1] == got[a][-1].replace(f'"seq": {a},', f'"seq": {b},')
    assert got[1][3] == received and got[1][5:7] == [False, "null"]
