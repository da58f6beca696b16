"""fleet.matching: visits started and ended, tolerance, rounding rules, every anomaly."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet import tagtokens
from fleet.badges import issue, replace, revoke
from fleet.ingest import handle_clock
from fleet.corrections import correct
from fleet.matching import match_pending
from fleet.models import (Anomaly, Badge, Client, ClockEvent, Device, Organisation, Visit,
                          VisitRecord)

from .conftest import NOW, TS

CARD_A, CARD_B = "04A1B2C3D4E5F6", "04A1B2C3D4E5F7"


@pytest.fixture
def visit(session, agency):
    """Alice at Mme Durand (reader r1), 10:00-11:00 Paris = 09:00-10:00 UTC."""
    v = Visit(organisation_id=agency["org"].id, client_id=agency["clients"][0].id,
              caregiver_id=agency["caregivers"][0].id, planned_start=NOW,
              planned_end=NOW + timedelta(hours=1))
    session.add(v)
    session.commit()
    return v


def tap(session, clock, event, *events, device="r1", device_now=TS):
    """Send `events` from `device`, whose clock says `device_now` while the fleet's says TS."""
    handle_clock(session, device, clock(*events, now=device_now), NOW)
    session.commit()


def anomalies(session):
    return sorted(a.kind for a in session.scalars(select(Anomaly)))


def record(session, visit):
    return session.scalars(select(VisitRecord).where(VisitRecord.visit_id == visit.id)).one()


def test_in_then_out_makes_a_done_record(session, clock, event, visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS + 300),
        event(2, CARD_A, "out", TS + 3600 + 120))
    counts = match_pending(session)
    session.commit()
    assert counts["matched"] == 2 and anomalies(session) == []
    rec = record(session, visit)
    assert rec.actual_start == NOW + timedelta(seconds=300)
    assert rec.actual_end == NOW + timedelta(seconds=3720)
    assert rec.retained_start == rec.actual_start  # rounding "none"
    assert rec.status == "done" and session.get(Visit, visit.id).status == "done"
    events = session.scalars(select(ClockEvent).order_by(ClockEvent.seq)).all()
    assert [(e.match_status, e.visit_id) for e in events] == [("matched", visit.id)] * 2
    assert rec.start_event_id == events[0].id and rec.end_event_id == events[1].id


def test_matching_twice_changes_nothing(session, clock, event, visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS), event(2, CARD_B, "in", TS + 60))
    first = match_pending(session)
    session.commit()
    assert first["matched"] == 1 and first["unknown_badge"] == 0
    assert match_pending(session) == {}
    session.commit()
    assert len(session.scalars(select(Anomaly)).all()) == 1
    assert len(session.scalars(select(VisitRecord)).all()) == 1


def test_arrival_starts_the_visit_in_progress(session, clock, event, visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS - 600))
    match_pending(session)
    session.commit()
    assert session.get(Visit, visit.id).status == "in_progress"
    assert record(session, visit).status == "in_progress"


def test_after_the_planned_end_is_no_planned_visit(session, clock, event, visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS + 61 * 60))
    match_pending(session)
    session.commit()
    assert anomalies(session) == ["no_planned_visit"]
    assert session.scalar(select(ClockEvent.match_status)) == "anomaly"
    assert session.get(Visit, visit.id).status == "planned"


def test_early_beyond_the_tolerance_is_no_planned_visit(session, clock, event, visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS - 31 * 60))
    match_pending(session)
    assert anomalies(session) == ["no_planned_visit"]


def test_late_arrival_is_matched_not_missing(session, clock, event, visit):
    """Past the tolerance but before the planned end: the visit is started, late (the bug of
    issue 10 left it no_planned_visit and the visit "missing")."""
    tap(session, clock, event, event(1, CARD_A, "in", TS + 42 * 60))
    match_pending(session)
    session.commit()
    assert anomalies(session) == []
    assert session.scalar(select(ClockEvent.visit_id)) == visit.id
    assert session.get(Visit, visit.id).status == "in_progress"
    assert record(session, visit).actual_start == NOW + timedelta(minutes=42)


def test_on_time_visit_wins_over_a_late_one(session, clock, event, visit, agency):
    """09:00-10:00 and 09:40-10:30 UTC: a tap at 09:35 is on time for the second, late for
    the first."""
    later = Visit(organisation_id=agency["org"].id, client_id=agency["clients"][0].id,
                  caregiver_id=agency["caregivers"][0].id,
                  planned_start=NOW + timedelta(minutes=40),
                  planned_end=NOW + timedelta(minutes=90))
    session.add(later)
    session.commit()
    tap(session, clock, event, event(1, CARD_A, "in", TS + 35 * 60))
    match_pending(session)
    assert session.scalar(select(ClockEvent.visit_id)) == later.id


@pytest.fixture
def two_visits(session, agency, visit):
    """Alice at Mme Durand 09:00-10:00 and 10:15-11:15 UTC; Bruno there 10:15-11:15."""
    org, home = agency["org"].id, agency["clients"][0].id
    second = Visit(organisation_id=org, client_id=home, caregiver_id=agency["caregivers"][0].id,
                   planned_start=NOW + timedelta(minutes=75),
                   planned_end=NOW + timedelta(minutes=135))
    bruno = Visit(organisation_id=org, client_id=home, caregiver_id=agency["caregivers"][1].id,
                  planned_start=NOW + timedelta(minutes=75),
                  planned_end=NOW + timedelta(minutes=135))
    session.add_all([second, bruno])
    session.commit()
    return visit, second, bruno


def test_the_devices_chosen_visit_is_honoured(session, clock, event, two_visits):
    """At 09:50 the rules would start nothing (the first visit is late-but-under-way); the
    phone said it is the second one: it is Alice's at that home, so it wins."""
    first, second, _ = two_visits
    tap(session, clock, event, event(1, CARD_A, "in", TS + 50 * 60, visit=second.id))
    match_pending(session)
    session.commit()
    assert session.scalar(select(ClockEvent.visit_id)) == second.id
    assert record(session, second).actual_start == NOW + timedelta(minutes=50)
    tap(session, clock, event, event(2, CARD_A, "out", TS + 140 * 60, visit=second.id))
    match_pending(session)
    assert record(session, second).actual_end == NOW + timedelta(minutes=140)
    assert record(session, second).status == "done" and anomalies(session) == []
    assert session.get(Visit, first.id).status == "planned"
    # a second departure for the same, ended visit does not move its end: no visit is open
    tap(session, clock, event, event(3, CARD_A, "out", TS + 160 * 60, visit=second.id))
    match_pending(session)
    assert record(session, second).actual_end == NOW + timedelta(minutes=140)
    assert anomalies(session) == ["no_planned_visit"]


def test_a_phones_chosen_visit_is_honoured(session, clock, event, two_visits, agency, phone):
    """The caregiver app picked the 10:15 visit at 09:20: the rules alone would take the
    09:00 one (on time)."""
    _, second, _ = two_visits
    session.add(Badge(organisation_id=agency["org"].id, kind="client_tag", uid="C12-7F3A",
                      client_id=agency["clients"][0].id))
    session.commit()
    ev = event(1, None, "in", TS + 20 * 60, tag="C12-7F3A", method="qr", visit=second.id)
    ev.pop("badge")
    tap(session, clock, event, ev, device="p1")
    match_pending(session)
    assert session.scalar(select(ClockEvent.visit_id)) == second.id


def test_a_chosen_visit_of_another_caregiver_is_not_honoured(session, clock, event, two_visits):
    first, _, bruno = two_visits
    tap(session, clock, event, event(1, CARD_A, "in", TS + 5 * 60, visit=bruno.id))
    match_pending(session)
    assert session.scalar(select(ClockEvent.visit_id)) == first.id
    assert session.scalars(select(VisitRecord).where(VisitRecord.visit_id == bruno.id)).first() \
        is None


def test_a_chosen_visit_that_does_not_exist_falls_back_to_the_rules(session, clock, event,
                                                                     visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS + 60, visit=999999))
    match_pending(session)
    assert session.scalar(select(ClockEvent.visit_id)) == visit.id


def test_a_corrected_record_keeps_its_retained_period(session, clock, event, visit, agency):
    """COD for a forgotten departure, then the phone's departure syncs a day later: the raw
    time is recorded, the retained one stays the coordinator's."""
    tap(session, clock, event, event(1, CARD_A, "in", TS))
    match_pending(session)
    session.commit()
    correct(session, visit.id, code="COD", arrival=None,
            departure=NOW + timedelta(minutes=60), why="forgot to tap out", who="test",
            role="manager", organisation_id=agency["org"].id)
    session.commit()
    tap(session, clock, event, event(2, CARD_A, "out", TS + 95 * 60))
    match_pending(session)
    session.commit()
    rec = record(session, visit)
    assert rec.actual_end == NOW + timedelta(minutes=95)
    assert (rec.retained_start, rec.retained_end) == (NOW, NOW + timedelta(minutes=60))
    assert rec.correction_code == "COD"


def test_a_late_event_leaves_a_created_visit_done(session, clock, event, visit, agency):
    """CRE from a paper sheet, then the reader's arrival syncs: recorded raw, nothing else."""
    correct(session, visit.id, code="CRE", arrival=NOW, departure=NOW + timedelta(hours=1),
            why="paper sheet", who="test", role="manager", organisation_id=None)
    session.commit()
    tap(session, clock, event, event(1, CARD_A, "in", TS + 300))
    match_pending(session)
    session.commit()
    rec = record(session, visit)
    assert rec.actual_start == NOW + timedelta(minutes=5) and rec.status == "done"
    assert session.get(Visit, visit.id).status == "done"
    assert (rec.retained_start, rec.retained_end) == (NOW, NOW + timedelta(hours=1))


def test_a_validated_record_keeps_its_retained_period(session, clock, event, visit):
    from fleet.validation import validate_visit

    tap(session, clock, event, event(1, CARD_A, "in", TS))
    match_pending(session)
    session.commit()
    validate_visit(session, visit, "test", "manager")
    session.commit()
    tap(session, clock, event, event(2, CARD_A, "out", TS + 3600))
    match_pending(session)
    session.commit()
    rec = record(session, visit)
    assert rec.actual_end == NOW + timedelta(hours=1) and rec.retained_end is None


def test_tolerance_is_per_organisation(session, clock, event, visit, agency):
    agency["org"].tolerance_min = 45
    session.commit()
    tap(session, clock, event, event(1, CARD_A, "in", TS + 40 * 60))
    match_pending(session)
    assert record(session, visit).actual_start == NOW + timedelta(minutes=40)


def test_closest_visit_wins(session, clock, event, visit, agency):
    later = Visit(organisation_id=agency["org"].id, client_id=agency["clients"][0].id,
                  caregiver_id=agency["caregivers"][0].id,
                  planned_start=NOW + timedelta(minutes=40),
                  planned_end=NOW + timedelta(minutes=90))
    session.add(later)
    session.commit()
    tap(session, clock, event, event(1, CARD_A, "in", TS + 25 * 60))
    match_pending(session)
    assert session.scalar(select(ClockEvent.visit_id)) == later.id


def test_unknown_badge(session, clock, event, visit):
    tap(session, clock, event, event(1, "0400000000000001", "in", TS))
    match_pending(session)
    assert anomalies(session) == ["unknown_badge"]


def test_revoked_card_is_flagged_with_when_and_why(session, clock, event, visit):
    card = session.scalars(select(Badge).where(Badge.uid == CARD_A)).one()
    revoke(session, "test", card, "lost on the bus")
    session.commit()
    tap(session, clock, event, event(1, CARD_A, "in", TS))
    match_pending(session)
    assert anomalies(session) == ["revoked_badge"]
    detail = session.scalar(select(Anomaly.detail))
    assert "lost on the bus" in detail and f"badge {card.id}" in detail
    assert f"revoked on {card.revoked_at:%Y-%m-%d %H:%M} UTC" in detail  # the when
    assert session.scalar(select(ClockEvent.match_status)) == "anomaly"


def test_wrong_home_is_no_planned_visit(session, clock, event, visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS), device="r2")
    match_pending(session)
    assert anomalies(session) == ["no_planned_visit"]


def test_out_before_in_then_late_arrival_completes(session, clock, event, visit):
    tap(session, clock, event, event(1, CARD_A, "out", TS + 3600))
    match_pending(session)
    session.commit()
    assert anomalies(session) == ["out_before_in"]
    rec = record(session, visit)
    assert rec.status == "incomplete" and rec.actual_end is not None
    tap(session, clock, event, event(2, CARD_A, "in", TS))
    match_pending(session)
    session.commit()
    assert record(session, visit).status == "done"


def test_out_with_nothing_planned(session, clock, event, agency):
    tap(session, clock, event, event(1, CARD_A, "out", TS))
    match_pending(session)
    assert anomalies(session) == ["no_planned_visit"]


def test_double_tap_is_kept_raw_but_ignored(session, clock, event, visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS), event(2, CARD_A, "in", TS + 4))
    match_pending(session)
    session.commit()
    assert anomalies(session) == ["double_tap"]
    statuses = session.scalars(select(ClockEvent.match_status).order_by(ClockEvent.seq)).all()
    assert statuses == ["matched", "ignored"]


def test_double_tap_across_runs(session, clock, event, visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS))
    match_pending(session)
    session.commit()
    tap(session, clock, event, event(2, CARD_A, "in", TS + 9))
    match_pending(session)
    assert anomalies(session) == ["double_tap"]


@pytest.mark.parametrize("offset,tq,flagged", [(301, "synced", True), (0, "unsynced", True),
                                               (299, "rtc", False)])
def test_clock_off_is_flagged_but_still_matched(session, clock, event, visit, offset, tq,
                                                flagged):
    # the tap a few seconds before the batch, on the device's clock (a tap after its own
    # batch's `now` would be `clock_far`, tests/fleet/test_clock_flags.py)
    tap(session, clock, event, event(1, CARD_A, "in", TS - offset - 5, tq=tq),
        device_now=TS - offset)
    match_pending(session)
    assert anomalies(session) == (["clock_off"] if flagged else [])
    assert session.scalar(select(ClockEvent.match_status)) == "matched"


def test_rounding_applies_to_records(session, clock, event, visit, agency):
    agency["org"].rounding_mode = "planned"
    session.commit()
    tap(session, clock, event, event(1, CARD_A, "in", TS + 420),
        event(2, CARD_A, "out", TS + 3600 - 300))
    match_pending(session)
    rec = record(session, visit)
    assert (rec.retained_start, rec.retained_end) == (visit.planned_start, visit.planned_end)
    assert rec.actual_start == NOW + timedelta(seconds=420)


def test_phone_with_client_tag(session, clock, event, visit, agency):
    org_id = agency["org"].id
    session.add_all([
        Badge(organisation_id=org_id, kind="client_tag", uid="C12-7F3A",
              client_id=agency["clients"][0].id),
        Device(ident="p1", kind="phone", organisation_id=org_id,
               caregiver_id=agency["caregivers"][0].id)])
    session.commit()
    ev = event(1, None, "in", TS, tag="C12-7F3A", method="qr")
    ev.pop("badge")
    tap(session, clock, event, ev, device="p1")
    match_pending(session)
    assert session.scalar(select(ClockEvent.visit_id)) == visit.id


@pytest.fixture
def phone(session, agency):
    session.add(Device(ident="p1", kind="phone", organisation_id=agency["org"].id,
                       caregiver_id=agency["caregivers"][0].id))
    session.commit()


def phone_tap(session, clock, event, tag, seq=1, ts=TS):
    ev = event(seq, None, "in", ts, tag=tag, method="nfc")
    ev.pop("badge")
    tap(session, clock, event, ev, device="p1")
    match_pending(session)
    session.commit()


def test_signed_tag_issued_by_the_fleet_matches(session, clock, event, visit, agency, phone):
    badge = issue(session, "test", agency["clients"][0])
    session.commit()
    assert badge.signed and tagtokens.verify(agency["org"].tag_secret, agency["org"].id,
                                             badge.uid) is None
    phone_tap(session, clock, event, badge.uid)
    assert anomalies(session) == [] and session.scalar(select(ClockEvent.visit_id)) == visit.id


def test_forged_tag_is_flagged(session, clock, event, visit, agency, phone):
    """A token made up from the client's number, or one with a single character changed."""
    org, client = agency["org"], agency["clients"][0]
    good = issue(session, "test", client).uid
    session.commit()
    made_up = tagtokens.mint("00" * 32, org.id, client.id)
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    for seq, tag in enumerate([made_up, flipped, "TG1.garbage"], 1):
        phone_tap(session, clock, event, tag, seq=seq, ts=TS + 60 * seq)
    assert anomalies(session) == ["forged_tag"] * 3
    details = session.scalars(select(Anomaly.detail)).all()
    assert "signature does not match" in details[0] and "not a TG1 token" in details[2]
    assert session.scalar(select(ClockEvent.visit_id).where(ClockEvent.visit_id.is_not(None))) \
        is None


def test_replaced_tag_stops_matching(session, clock, event, visit, agency, phone):
    """The copied QR code of a replaced tag is flagged; the new tag matches."""
    old = issue(session, "test", agency["clients"][0])
    session.commit()
    new = replace(session, "test", old, "QR code photographed")
    session.commit()
    assert new.uid != old.uid and new.replaces_id == old.id and not old.active
    phone_tap(session, clock, event, old.uid)
    assert anomalies(session) == ["revoked_badge"]
    phone_tap(session, clock, event, new.uid, seq=2, ts=TS + 60)
    assert session.scalar(select(ClockEvent.visit_id).where(ClockEvent.seq == 2)) == visit.id


def test_another_organisations_tag_is_unknown_not_forged(session, clock, event, visit, phone):
    other = Organisation(name="Autre agence")
    session.add(other)
    session.flush()
    client = Client(organisation_id=other.id, name="Mme Autre")
    session.add(client)
    session.flush()
    tag = issue(session, "test", client).uid
    session.commit()
    phone_tap(session, clock, event, tag)
    assert anomalies(session) == ["unknown_badge"]
    assert "belongs to organisation" in session.scalar(select(Anomaly.detail))


def test_cancelled_visits_are_not_matched(session, clock, event, visit):
    visit.status = "cancelled"
    session.commit()
    tap(session, clock, event, event(1, CARD_A, "in", TS))
    match_pending(session)
    assert anomalies(session) == ["no_planned_visit"]


def test_two_cards_within_10_s_are_not_a_double_tap(session, clock, event, visit):
    """A double tap is the same card again (mutation survivor, #14 item 12: the tap's identity
    was not pinned)."""
    tap(session, clock, event, event(1, CARD_A, "in", TS), event(2, CARD_B, "in", TS + 5))
    match_pending(session)
    session.commit()
    assert anomalies(session) == ["no_planned_visit"]  # Bruno has no visit here; no double
    assert record(session, visit).actual_start == NOW


def test_a_chosen_visit_planned_days_before_is_loaded(session, clock, event, agency):
    """Visits are loaded a day around the events, plus the one the device chose: a 49-hour
    live-in visit started two days ago is still matched (mutation survivor, #14 item 12)."""
    live_in = Visit(organisation_id=agency["org"].id, client_id=agency["clients"][0].id,
                    caregiver_id=agency["caregivers"][0].id,
                    planned_start=NOW - timedelta(days=2), planned_end=NOW + timedelta(hours=1))
    session.add(live_in)
    session.commit()
    tap(session, clock, event, event(1, CARD_A, "out", TS + 60, visit=live_in.id))
    match_pending(session)
    session.commit()
    assert session.scalar(select(ClockEvent.visit_id)) == live_in.id
    assert record(session, live_in).actual_end == NOW + timedelta(seconds=60)


def test_the_counts_and_the_proof_of_a_card_tap(session, clock, event, visit):
    """match_pending's counts name each outcome and anomaly once per event; a card's tap is a
    static proof, an unknown card's none (mutation survivors, #14 item 12)."""
    tap(session, clock, event, event(1, CARD_A, "in", TS + 60),
        event(2, "0102030405060708", "in", TS + 120), device_now=TS - 400)
    counts = match_pending(session)
    session.commit()
    assert counts == {"matched": 1, "anomaly": 1, "unknown_badge": 1, "clock_off": 2}
    proofs = session.execute(select(ClockEvent.seq, ClockEvent.tag_proof)
                             .order_by(ClockEvent.seq)).all()
    assert [tuple(p) for p in proofs] == [(1, "static"), (2, None)]


def test_a_double_tap_across_two_batches_at_exactly_10_s(session, clock, event, visit):
    """The earlier tap was matched in a previous pass: it is loaded back when it lies exactly
    10 s before (mutation survivor, #14 item 12)."""
    tap(session, clock, event, event(1, CARD_A, "in", TS))
    match_pending(session)
    session.commit()
    tap(session, clock, event, event(2, CARD_A, "in", TS + 10))
    match_pending(session)
    session.commit()
    assert anomalies(session) == ["double_tap"]
    assert record(session, visit).actual_start == NOW


# -- the matching windows on both sides, to the second (docs/protocol.md, "Matching"; the visit
# is 09:00-10:00 UTC, the tolerance 30 min) -------------------------------------------------
@pytest.mark.parametrize("dir, offset_s, kinds", [
    ("in", -1800, []), ("in", -1801, ["no_planned_visit"]),  # early, within the tolerance
    ("in", 1800, []), ("in", 1801, []),  # on time, then late: both start the visit
    ("in", 3599, []), ("in", 3600, ["no_planned_visit"]),  # late until the planned end
    ("out", -1800, ["out_before_in"]), ("out", -1801, ["no_planned_visit"]),
    ("out", 3600 + 1800, ["out_before_in"]), ("out", 3600 + 1801, ["no_planned_visit"]),
])
def test_the_matching_windows_on_both_sides(session, clock, event, visit, dir, offset_s, kinds):
    tap(session, clock, event, event(1, CARD_A, dir, TS + offset_s))
    match_pending(session)
    session.commit()
    assert anomalies(session) == kinds
    matched = "no_planned_visit" not in kinds
    assert session.scalar(select(ClockEvent.visit_id)) == (visit.id if matched else None)


def test_a_departure_in_the_same_second_as_the_arrival_ends_the_visit(session, clock, event,
                                                                      visit):
    tap(session, clock, event, event(1, CARD_A, "in", TS + 60), event(2, CARD_A, "out", TS + 60))
    match_pending(session)
    session.commit()
    assert anomalies(session) == []
    rec = record(session, visit)
    assert rec.status == "done" and rec.actual_start == rec.actual_end


def test_client_and_caregiver_ids_are_not_confused(session, clock, event, agency):
    """In the fixtures client 1 and caregiver 1 share a number: here they do not, so a query
    that mixed them up would find no visit (mutation survivors, #14 item 12)."""
    from fleet.models import Caregiver

    org = agency["org"]
    extra = [Caregiver(organisation_id=org.id, name=f"Extra {i}", phone="0600000000")
             for i in range(3)]
    home = Client(organisation_id=org.id, name="Mme Roux", address="3 rue Haute")
    session.add_all(extra + [home])
    session.flush()
    carer = extra[-1]
    assert carer.id != home.id
    session.add_all([
        Badge(organisation_id=org.id, kind="caregiver_card", uid="04AAAAAAAAAAAA",
              caregiver_id=carer.id),
        Device(ident="r3", kind="reader", organisation_id=org.id, client_id=home.id),
        Visit(organisation_id=org.id, client_id=home.id, caregiver_id=carer.id,
              planned_start=NOW, planned_end=NOW + timedelta(hours=1))])
    session.commit()
    tap(session, clock, event, event(1, "04AAAAAAAAAAAA", "in", TS + 60), device="r3")
    match_pending(session)
    session.commit()
    assert anomalies(session) == []
    assert session.scalar(select(ClockEvent.match_status)) == "matched"


def test_a_departure_older_than_the_arrival_is_out_before_in(session, clock, event, visit):
    """A phone synced late: its departure's time lies before the arrival already matched. The
    visit in progress is still open, so it gets the departure, flagged (docs/protocol.md)."""
    tap(session, clock, event, event(1, CARD_A, "in", TS + 600))
    match_pending(session)
    session.commit()
    tap(session, clock, event, event(2, CARD_A, "out", TS + 300))
    match_pending(session)
    session.commit()
    assert anomalies(session) == ["out_before_in"]
    assert session.scalar(select(ClockEvent.visit_id).where(ClockEvent.seq == 2)) == visit.id
