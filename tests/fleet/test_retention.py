"""Finding "personal data and retention (CNIL)" (issue #14, item 5): positions kept at most 2
months (less when the agency says so), rejected payloads at most 30 days, audit entries as long
as the agency's setting; a daily job run by the lease holder purges and records what it purged;
logs carry no personal data.

Before: everything was kept forever, and the matching's debug log named card UIDs and tags."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from fleet import auditchain, retention
from fleet.ingest import handle_clock
from fleet.matching import match_pending
from fleet.models import (AlertSettings, AuditLog, ClockEvent, Rejection, RetentionRun)

from .conftest import NOW, TS

DAY = 86400


def _tap(session, seq: int, days_ago: int, pos=(48.85, 2.35, 12.0), badge="04A1B2C3D4E5F6"):
    ts = TS - days_ago * DAY
    raw = json.dumps({"now": ts, "events": [{"seq": seq, "badge": badge, "dir": "in",
                                             "method": "nfc", "ts": ts, "tq": "synced",
                                             "pos": list(pos)}]}).encode()
    handle_clock(session, "r1", raw, datetime.fromtimestamp(ts, timezone.utc))
    session.commit()


def test_finding_retention_positions_and_rejections_are_purged(session, agency):
    _tap(session, 1, days_ago=61)
    _tap(session, 2, days_ago=59)
    old = NOW - timedelta(days=31)
    session.add_all([Rejection(device_ident="r1", device_id=1, topic="t", reason="bad_event",
                               raw="{}", created_at=old),
                     Rejection(device_ident="nobody", topic="t", reason="unknown_device",
                               raw="{}", created_at=old),
                     Rejection(device_ident="r1", device_id=1, topic="t", reason="bad_event",
                               raw="{}", created_at=NOW)])
    session.commit()
    run = retention.purge(session, NOW)
    session.commit()
    events = {e.seq: e for e in session.scalars(select(ClockEvent))}
    assert events[1].pos is None and "pos" not in events[1].raw  # the copy in raw too
    assert events[1].badge_uid == "04A1B2C3D4E5F6"  # the clock event itself is kept
    assert events[2].pos == [48.85, 2.35, 12.0]
    assert session.scalar(select(Rejection.created_at)) == NOW
    assert run.purged == {"positions": 1, "rejections": 2, "audit": 0, "outbox": 0,
                          "messages": 0, "callbacks": 0}
    kept = session.scalars(select(RetentionRun)).one()
    assert kept.purged["positions"] == 1
    assert session.scalars(select(AuditLog).where(AuditLog.action == "retention")).one()


def test_finding_retention_an_agency_may_keep_positions_less(session, agency):
    session.add(AlertSettings(organisation_id=agency["org"].id, positions_keep_days=7))
    session.commit()
    _tap(session, 1, days_ago=8)
    retention.purge(session, NOW)
    session.commit()
    assert session.scalar(select(ClockEvent.pos)) is None


def test_finding_retention_never_more_than_two_months(session, agency):
    session.add(AlertSettings(organisation_id=agency["org"].id, positions_keep_days=400))
    session.commit()
    _tap(session, 1, days_ago=61)
    retention.purge(session, NOW)
    session.commit()
    assert session.scalar(select(ClockEvent.pos)) is None


def test_finding_retention_old_audit_entries_go_and_the_chain_still_verifies(session, agency):
    from fleet import audit

    session.add(AlertSettings(organisation_id=agency["org"].id, audit_keep_days=30))
    for i in range(5):
        audit.record(session, "user:boss@agency.fr", "update", f"visit:{i}")
    session.commit()
    ids = list(session.scalars(select(AuditLog.id).order_by(AuditLog.id)))
    session.execute(update(AuditLog).where(AuditLog.id.in_(ids[:3]))
                    .values(at=NOW - timedelta(days=40)))
    session.commit()
    # moving `at` by hand broke those entries' hashes; they are the ones purged
    run = retention.purge(session, NOW)
    session.commit()
    assert run.purged["audit"] == 3 and run.audit_anchor
    assert auditchain.verify(session).ok


def test_finding_retention_the_lease_holder_runs_it(session, agency, database_url):
    from fleet.worker import IngestWorker

    _tap(session, 1, days_ago=70)
    w = IngestWorker(database_url, publish=lambda *a: None)
    w.open_database()
    w.run_retention()
    assert w.counts["purged_positions"] == 1
    session.expire_all()
    assert session.scalar(select(ClockEvent.pos)) is None


def test_finding_retention_logs_carry_no_personal_data(session, agency, caplog):
    """Ingest and matching at DEBUG level: device idents only, never a card UID, a tag, a name
    or a position."""
    caplog.set_level(logging.DEBUG, logger="telegest")
    _tap(session, 1, days_ago=0, badge="0499887766554433")  # an unknown card
    _tap(session, 2, days_ago=0)
    raw = b'{"now": %d, "events": [{"seq": 3, "tag": "TG1.9.9.SECRET", "dir": "in", ' \
          b'"method": "qr", "ts": %d, "tq": "synced"}]}' % (TS, TS)
    handle_clock(session, "r1", raw, NOW)
    session.commit()
    match_pending(session)
    session.commit()
    text = caplog.text
    assert "unknown_badge" in text  # what happened is logged, with device and event ids
    for secret in ("0499887766554433", "04A1B2C3D4E5F6", "TG1.9.9.SECRET", "48.85",
                   "Alice Martin", "Mme Durand"):
        assert secret not in text, secret


def test_an_sos_position_goes_after_the_same_two_months(session, agency):
    from fleet.models import Device, SosAlert

    device = session.scalars(select(Device)).first()
    for uid, days in (("old-sos-1", 61), ("new-sos-1", 59)):
        session.add(SosAlert(organisation_id=agency["org"].id, device_id=device.id, uid=uid,
                             source="box", raised_at=NOW - timedelta(days=days),
                             lat=48.85, lon=2.35, accuracy_m=12))
    session.commit()
    run = retention.purge(session, NOW)
    session.commit()
    kept = {a.uid: (a.lat, a.lon, a.accuracy_m) for a in session.scalars(select(SosAlert))}
    assert kept == {"old-sos-1": (None, None, None), "new-sos-1": (48.85, 2.35, 12)}
    assert run.purged["positions"] == 1  # the SOS itself is kept: who, when, where planned


def test_messages_and_taken_callbacks_go_after_a_year(session, agency):
    """Messages (with their receipts) sent over 365 days ago go; a call-back request goes a
    year after it was taken, and one still waiting stays whatever its age."""
    from fleet.models import CallbackRequest, Caregiver, Message, MessageRecipient

    org = agency["org"].id
    cg = session.scalars(select(Caregiver)).first()
    old, recent = NOW - timedelta(days=366), NOW - timedelta(days=364)
    for subject, at in (("old", old), ("recent", recent)):
        m = Message(organisation_id=org, subject=subject, body="Code 1234", created_at=at)
        session.add(m)
        session.flush()
        session.add(MessageRecipient(message_id=m.id, caregiver_id=cg.id, read_at=at))
    session.add_all([
        CallbackRequest(organisation_id=org, caregiver_id=cg.id, reason="taken long ago",
                        created_at=old, taken_at=old, taken_by="coord"),
        CallbackRequest(organisation_id=org, caregiver_id=cg.id, reason="never taken",
                        created_at=old),
        CallbackRequest(organisation_id=org, caregiver_id=cg.id, reason="taken lately",
                        created_at=old, taken_at=recent, taken_by="coord")])
    session.commit()
    run = retention.purge(session, NOW)
    session.commit()
    assert [m.subject for m in session.scalars(select(Message))] == ["recent"]
    assert session.scalar(select(MessageRecipient.message_id)) == session.scalar(
        select(Message.id))
    assert sorted(c.reason for c in session.scalars(select(CallbackRequest))) == [
        "never taken", "taken lately"]
    assert (run.purged["messages"], run.purged["callbacks"]) == (1, 1)
