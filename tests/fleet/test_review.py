"""fleet.review: the "to review" list of a period, each kind, and what leaves it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fleet.corrections import correct
from fleet.ingest import handle_clock
from fleet.matching import match_pending
from fleet.models import Anomaly, Visit, VisitRecord
from fleet.review import review_items
from fleet.validation import validate_visit

from .conftest import NOW, TS

CARD = "04A1B2C3D4E5F6"
H = timedelta(hours=1)
M = timedelta(minutes=1)
DAY = (NOW - 10 * H, NOW + 14 * H)  # 23 Nov 2026, which is past: planned ends are past


@pytest.fixture
def day(session, agency):
    """One past day of Bruno at M. Petit (records written as matching would) and of Alice at
    Mme Durand (clocked for real through reader r1)."""
    org = agency["org"]

    def visit(start, record=None, who=1, where=1, status="done"):
        v = Visit(organisation_id=org.id, client_id=agency["clients"][where].id,
                  caregiver_id=agency["caregivers"][who].id, planned_start=start,
                  planned_end=start + H, status=status)
        session.add(v)
        session.flush()
        if record:
            session.add(VisitRecord(visit_id=v.id, actual_start=record[0],
                                    actual_end=record[1], status="done"))
        return v

    vs = {
        "ok": visit(NOW - 6 * H, (NOW - 6 * H + 5 * M, NOW - 5 * H)),
        "missed": visit(NOW - 4 * H, status="planned"),
        "cancelled": visit(NOW - 3 * H, status="cancelled"),
        "missing_departure": visit(NOW - 2 * H, (NOW - 2 * H, None)),
        "late": visit(NOW + 2 * H, (NOW + 2 * H + 42 * M, NOW + 3 * H)),
        "far_off": visit(NOW + 4 * H, (NOW + 4 * H, NOW + 5 * H + 50 * M)),
        "early": visit(NOW + 6 * H, (NOW + 6 * H - 40 * M, NOW + 7 * H)),
        "other_day": visit(NOW - 30 * H, status="planned"),
        "alice": visit(NOW, who=0, where=0, status="planned"),
    }
    session.commit()
    handle_clock(session, "r1", _batch(
        {"seq": 1, "badge": CARD, "dir": "in", "method": "manual", "reason": "card forgotten",
         "ts": TS + 60, "tq": "synced"},
        {"seq": 2, "badge": CARD, "dir": "out", "method": "nfc", "ts": TS + 3600, "tq": "synced"},
        {"seq": 3, "badge": CARD, "dir": "out", "method": "nfc", "ts": TS + 3603, "tq": "synced"},
        {"seq": 4, "badge": "0400000000000001", "dir": "in", "method": "nfc", "ts": TS + 7200,
         "tq": "synced"}), NOW)
    match_pending(session)
    session.commit()
    return vs


def _batch(*events) -> bytes:
    import json

    return json.dumps({"now": TS, "events": list(events)}).encode()


def kinds_of(items):
    return [(i.kind, i.visit_id) for i in items]


def test_each_kind_once(session, agency, day):
    items = review_items(session, agency["org"], *DAY)
    got = kinds_of(items)
    assert ("missed", day["missed"].id) in got
    assert ("missing_departure", day["missing_departure"].id) in got
    assert ("late", day["late"].id) in got
    assert ("far_off", day["far_off"].id) in got
    assert ("far_off", day["early"].id) in got
    assert ("manual", day["alice"].id) in got
    unknown = [i for i in items if i.kind == "anomaly"]
    assert len(unknown) == 1 and unknown[0].detail.startswith("unknown_badge")
    assert unknown[0].anomaly_id is not None and unknown[0].clock_event_id is not None
    # the double tap (seq 3) needs nothing done: not listed
    assert session.scalar(select(Anomaly.kind).where(Anomaly.kind == "double_tap"))
    listed = {v for _, v in got}
    for quiet in ("ok", "cancelled", "other_day"):
        assert day[quiet].id not in listed
    assert len(got) == 7
    assert [i.at for i in items] == sorted(i.at for i in items)


def test_details_and_suggested_codes(session, agency, day):
    items = {(i.kind, i.visit_id): i for i in review_items(session, agency["org"], *DAY)}
    late = items[("late", day["late"].id)]
    assert "42 min late" in late.detail and "42 min en retard" in late.detail
    assert late.suggested_code == "MDT"
    assert items[("missed", day["missed"].id)].suggested_code == "CRE"
    assert items[("missing_departure", day["missing_departure"].id)].suggested_code == "COD"
    assert "50 min late" in items[("far_off", day["far_off"].id)].detail
    assert "40 min early" in items[("far_off", day["early"].id)].detail
    manual = items[("manual", day["alice"].id)]
    assert "card forgotten" in manual.detail and manual.clock_event_id is not None
    assert manual.as_dict()["at"] == (NOW + M).isoformat()


def test_kinds_filter_and_unknown_kind(session, agency, day):
    items = review_items(session, agency["org"], *DAY, kinds={"late", "missed"})
    assert sorted(i.kind for i in items) == ["late", "missed"]
    with pytest.raises(ValueError, match="unknown kind nope"):
        review_items(session, agency["org"], *DAY, kinds={"nope"})


def test_corrected_and_validated_visits_leave_the_list(session, agency, day):
    correct(session, day["missed"].id, code="CRE", arrival=NOW - 4 * H,
            departure=NOW - 3 * H, why="paper sheet", who="c", role="manager",
            organisation_id=None)
    validate_visit(session, day["late"], "c", "manager")
    validate_visit(session, day["alice"], "c", "manager")
    session.commit()
    listed = {i.visit_id for i in review_items(session, agency["org"], *DAY)}
    assert not listed & {day["missed"].id, day["late"].id, day["alice"].id}
    assert day["far_off"].id in listed


def test_resolved_anomalies_leave_the_list(session, agency, day):
    for a in session.scalars(select(Anomaly)):
        a.resolved = True
    session.commit()
    assert not [i for i in review_items(session, agency["org"], *DAY) if i.kind == "anomaly"]


def test_another_period_or_agency_sees_nothing_of_it(session, agency, day):
    from fleet.models import Organisation

    other = Organisation(name="Autre")
    session.add(other)
    session.commit()
    assert review_items(session, other, *DAY) == []
    items = review_items(session, agency["org"], NOW - 40 * H, NOW - 20 * H)
    assert kinds_of(items) == [("missed", day["other_day"].id)]
