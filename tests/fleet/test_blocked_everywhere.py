"""Finding "a blocked device is blocked everywhere" (issue #14, item 3).

Before: a blocked reader's clock events were stored and matched like any other (only the broker
kept it out, and the anonymous development broker does not), an enrolment token made before the
block still enrolled the phone afterwards, events taken while a device was declared lost and
sent after its unblock were matched without a word, and the console said "the broker refuses
it" even when no broker checked logins.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet import lifecycle
from fleet.brokerauth import NoBrokerAuth
from fleet.ingest import handle_clock
from fleet.lifecycle import Actor, LifecycleError
from fleet.matching import match_pending
from fleet.models import Anomaly, AuditLog, ClockEvent, Device, Rejection, Visit

from .conftest import NOW, TS

MANAGER = Actor("user:manager@agency.fr", "manager")
ADMIN = Actor("user:admin@agency.fr", "admin")


def _activate(session, ident: str) -> None:
    session.scalars(select(Device).where(Device.ident == ident)).one().status = "active"
    session.commit()


def _lost_then_found(session, ident: str = "r1") -> None:
    """The device declared lost, then found: a block and an unblock in the audit log."""
    lifecycle.block(session, ident, MANAGER, NoBrokerAuth(), "declared lost by mistake")
    session.commit()
    lifecycle.unblock(session, ident, ADMIN, NoBrokerAuth(), reason="found in the car")
    session.commit()


def _block_entries(session, ident: str = "r1") -> list[AuditLog]:
    """The device's block and unblock audit entries, oldest first."""
    return list(session.scalars(select(AuditLog).where(
        AuditLog.target == f"device:{ident}", AuditLog.action.in_(("block", "unblock")))
        .order_by(AuditLog.id)))


def test_finding_blocked_device_clock_messages_are_refused(session, agency, clock, event):
    _activate(session, "r1")
    lifecycle.block(session, "r1", MANAGER, NoBrokerAuth(), "stolen from the client's hall")
    session.commit()
    res = handle_clock(session, "r1", clock(event(1)), NOW)
    session.commit()
    assert res.refused == "device_refused" and res.stored == 0
    assert session.scalars(select(ClockEvent)).all() == []
    row = session.scalars(select(Rejection)).one()
    assert row.reason == "device_refused" and row.device_id is not None
    assert json.loads(row.raw)["events"][0]["seq"] == 1  # kept as sent, visible
    assert session.scalar(select(Device.acked_seq).where(Device.ident == "r1")) == 0


def test_finding_blocked_enrolment_token_dies_with_the_block(session, agency):
    org = agency["org"]
    session.add(Device(ident="phone-1", kind="phone", organisation_id=org.id,
                       caregiver_id=agency["caregivers"][0].id))
    session.commit()
    token, _ = lifecycle.create_enrolment(session, "phone-1", ADMIN)
    lifecycle.enrol(session, token, NoBrokerAuth())  # enrolled once...
    session.commit()
    again, _ = lifecycle.create_enrolment(session, "phone-1", ADMIN)  # ...a new QR is printed
    session.commit()
    session.scalars(select(Device).where(Device.ident == "phone-1")).one().status = "active"
    lifecycle.block(session, "phone-1", MANAGER, NoBrokerAuth(), "phone lost with its QR code")
    session.commit()
    with pytest.raises(LifecycleError) as refused:
        lifecycle.enrol(session, again, NoBrokerAuth())
    assert refused.value.status == 410


def test_finding_blocked_taps_from_before_the_block_are_not_flagged(session, agency, clock,
                                                                     event):
    org, (c1, _), (g1, _) = agency["org"], agency["clients"], agency["caregivers"]
    session.add(Visit(organisation_id=org.id, client_id=c1.id, caregiver_id=g1.id,
                      planned_start=NOW, planned_end=NOW + timedelta(hours=1)))
    _activate(session, "r1")
    _lost_then_found(session)
    # the box kept its taps while blocked (refused, not acked) and sends them now
    res = handle_clock(session, "r1", clock(event(1, ts=TS), event(2, dir="out", ts=TS + 1800)),
                       NOW)
    session.commit()
    assert res.stored == 2
    match_pending(session)
    session.commit()
    flagged = session.scalars(select(Anomaly).where(Anomaly.kind == "during_block")).all()
    assert len(flagged) == 0  # the block was declared after these taps: nothing to flag
    assert session.scalar(select(Visit.status)) == "done"  # matched as usual


def test_finding_blocked_a_tap_inside_the_blocked_period_is_flagged(session, agency, clock,
                                                                    event):
    _activate(session, "r1")
    _lost_then_found(session)
    # the block lasted from one hour before the tap to one hour after it
    block, unblock = _block_entries(session)
    tap = datetime.fromtimestamp(TS, timezone.utc)
    block.at = tap - timedelta(hours=1)
    unblock.at = tap + timedelta(hours=1)
    session.commit()
    handle_clock(session, "r1", clock(event(1, ts=TS)), NOW)
    session.commit()
    match_pending(session)
    session.commit()
    flagged = session.scalars(select(Anomaly).where(Anomaly.kind == "during_block")).one()
    assert "declared lost or stolen" in flagged.detail


def test_finding_blocked_console_says_broker_refuses_only_when_enforced(as_role_console):
    c, ident = as_role_console
    page = c.get(f"/devices/{ident}/lost")
    assert "does not check logins" in page.text and "will refuse this device at once" not in \
        page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    r = c.post(f"/devices/{ident}/lost", data={"csrf": csrf, "reason": "stolen",
                                               "confirm": "yes"})
    assert "this broker does not check logins" in r.text
    assert "le broker le refuse" not in r.text and "ne contrôle pas" not in r.text


@pytest.fixture
def as_role_console(demo):
    from fastapi.testclient import TestClient

    from fleet.api.app import create_app
    from fleet.config import Settings
    from fleet.console.users import create_user
    from fleet.db import make_engine, session_factory

    db_url, info = demo
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        create_user(s, "boss@agency.fr", "admin", "a long enough secret",
                    organisation_id=info["organisation_id"], language="en")
        ident = s.scalars(select(Device.ident).where(Device.kind == "reader")).first()
        s.scalars(select(Device).where(Device.ident == ident)).one().status = "active"
        s.commit()
    engine.dispose()
    c = TestClient(create_app(Settings(database_url=db_url)))
    page = c.get("/login").text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    c.post("/login", data={"csrf": csrf, "email": "boss@agency.fr",
                           "password": "a long enough secret", "next": "/board"})
    return c, ident


def test_the_blocked_periods_on_both_sides(session, agency, clock, event):
    """Two blocks, each lifted: a tap at a block's start is flagged, one at its unblock or
    between the two periods is not, one in the second period is (mutation survivors, #14
    item 12: only one period inside one block was tested)."""
    _activate(session, "r1")
    for _ in range(2):
        _lost_then_found(session)
    entries = _block_entries(session)
    tap = datetime.fromtimestamp(TS, timezone.utc)
    for entry, hours in zip(entries, (-3, -2, -1, 1)):
        entry.at = tap + timedelta(hours=hours)
    session.commit()
    hours = {1: -3, 2: -2, 3: -1.5, 4: 0, 5: 2}  # seq: the tap's time, in hours from TS
    handle_clock(session, "r1", clock(*[event(s, ts=TS + int(h * 3600), dir="in")
                                        for s, h in hours.items()]), NOW)
    session.commit()
    match_pending(session)
    session.commit()
    flagged = dict(session.execute(select(ClockEvent.seq, Anomaly.detail).join(
        Anomaly, Anomaly.clock_event_id == ClockEvent.id)
        .where(Anomaly.kind == "during_block")).all())
    assert sorted(flagged) == [1, 4]
    at = {h: f"{tap + timedelta(hours=h):%Y-%m-%d %H:%M} UTC" for h in (-3, -2, -1, 1)}
    assert f"({at[-3]} to {at[-2]})" in flagged[1] and f"({at[-1]} to {at[1]})" in flagged[4]


def test_an_unblock_whose_block_was_deleted_flags_nothing(session, agency, clock, event):
    """The retention job deletes old audit entries: an unblock left without its block opens
    no period."""
    _activate(session, "r1")
    _lost_then_found(session)
    block, unblock = _block_entries(session)
    unblock.at = datetime.fromtimestamp(TS, timezone.utc) - timedelta(hours=1)
    session.delete(block)
    session.commit()
    handle_clock(session, "r1", clock(event(1, ts=TS)), NOW)
    session.commit()
    match_pending(session)
    session.commit()
    assert session.scalars(select(Anomaly).where(Anomaly.kind == "during_block")).all() == []


def test_a_block_still_in_force_runs_to_now(session, agency, clock, event):
    """Events stored, then the device declared lost with an earlier start (the audit entry's
    time): the period has no end yet, its detail says "to now"."""
    _activate(session, "r1")
    handle_clock(session, "r1", clock(event(1, ts=TS)), NOW)
    session.commit()
    lifecycle.block(session, "r1", MANAGER, NoBrokerAuth(), "declared lost")
    session.commit()
    [entry] = _block_entries(session)
    start = datetime.fromtimestamp(TS, timezone.utc) - timedelta(hours=1)
    entry.at = start
    session.commit()
    match_pending(session)
    session.commit()
    flagged = session.scalars(select(Anomaly).where(Anomaly.kind == "during_block")).one()
    assert f"({start:%Y-%m-%d %H:%M} UTC to now)" in flagged.detail
