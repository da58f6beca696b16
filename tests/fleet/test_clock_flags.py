"""Time that can be trusted (issue #11 item 4): an event whose device time is far from when an
online device sent it is flagged `clock_far` (fleet/clock_flags.py); an unsynced one stays
`clock_off`; the board shows the last measured clock offset of the device that clocked the
visit. Events are matched all the same."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fleet.ingest import handle_clock
from fleet.matching import match_pending
from fleet.models import Anomaly, ClockEvent, Device, DeviceLink, Visit
from fleet.review import review_items
from fleet.visit_detail import visit_detail
from fleet.web.board import board_rows

from .conftest import NOW, TS

CARD = "04A1B2C3D4E5F6"


@pytest.fixture
def visit(session, agency):
    v = Visit(organisation_id=agency["org"].id, client_id=agency["clients"][0].id,
              caregiver_id=agency["caregivers"][0].id, planned_start=NOW - timedelta(minutes=15),
              planned_end=NOW + timedelta(hours=1))
    session.add(v)
    session.commit()
    return v


def link(session, state: str, since: timedelta) -> None:
    dev = session.scalars(select(Device).where(Device.ident == "r1")).one()
    session.add(DeviceLink(device_id=dev.id, state=state, changed_at=NOW - since))
    session.commit()


def flags(session, clock, event, ts: int, device_now: int = TS, tq: str = "synced"):
    """The anomalies of one tap at device time `ts`, sent when the device's clock said
    `device_now` and the fleet's NOW."""
    handle_clock(session, "r1", clock(event(1, CARD, "in", ts, tq=tq), now=device_now), NOW)
    session.commit()
    match_pending(session)
    session.commit()
    assert session.scalar(select(ClockEvent.match_status)) == "matched"
    return {a.kind: a.detail for a in session.scalars(select(Anomaly))}


def test_clock_far_an_online_device_sends_an_event_15_minutes_late(session, clock, event,
                                                                     visit, agency):
    link(session, "online", timedelta(hours=2))
    got = flags(session, clock, event, TS - 900)
    assert list(got) == ["clock_far"]
    assert "sent 15 min after its device time although the device was online" in got["clock_far"]
    # on the visit page and the review list, like the other flags
    detail = visit_detail(session, visit)
    assert [a["kind"] for a in detail["anomalies"]] == ["clock_far"]
    items = review_items(session, agency["org"], NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert [i.detail.split(":")[0] for i in items if i.kind == "anomaly"] == ["clock_far"]
    assert [i.visit_id for i in items if i.kind == "anomaly"] == [visit.id]


def test_clock_far_not_for_a_device_that_came_back_online_after_the_tap(session, clock, event,
                                                                          visit):
    link(session, "online", timedelta(minutes=2))  # offline at the tap: its journal held it
    assert flags(session, clock, event, TS - 900) == {}


def test_clock_far_not_for_an_offline_device_or_one_without_a_last_will(session, clock, event,
                                                                          visit):
    assert flags(session, clock, event, TS - 900) == {}, "no last will known (a phone)"
    session.execute(Anomaly.__table__.delete())
    link(session, "offline", timedelta(hours=2))
    handle_clock(session, "r1", clock(event(2, CARD, "out", TS - 800)), NOW)
    session.commit()
    match_pending(session)
    assert session.scalars(select(Anomaly)).all() == []


def test_clock_far_is_measured_on_the_devices_own_clock(session, clock, event, visit):
    # the device's clock is 10 min behind (clock_off), and the tap was just before sending:
    # the offset cancels, so the tap is not far from when it was sent
    link(session, "online", timedelta(hours=2))
    got = flags(session, clock, event, TS - 600 - 5, device_now=TS - 600)
    assert list(got) == ["clock_off"]


def test_clock_unsynced_event_is_flagged_clock_off(session, clock, event, visit):
    link(session, "online", timedelta(hours=2))
    got = flags(session, clock, event, TS - 3, tq="unsynced")
    assert list(got) == ["clock_off"] and "time quality unsynced" in got["clock_off"]


def test_board_shows_the_clocking_devices_offset(session, clock, event, visit, agency):
    [row] = board_rows(session, agency["org"], NOW.date(), NOW)
    assert row.clock_offset_s is None, "nothing clocked yet: no device"
    handle_clock(session, "r1", clock(event(1, CARD, "in", TS - 420), now=TS - 412), NOW)
    session.commit()
    match_pending(session)
    session.commit()
    [row] = board_rows(session, agency["org"], NOW.date(), NOW)
    assert row.actual_start is not None
    assert row.clock_offset_s == 412 and row.clock_wrong
