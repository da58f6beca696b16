"""fleet.retained: the agency's rules, with the ESPPADOM guide's examples (issue 10)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from fleet.models import Organisation, Visit
from fleet.retained import minutes, retained_period

START = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
HOUR_VISIT = Visit(planned_start=START, planned_end=START + timedelta(hours=1))


def rules(mode="none", step=15, overrun="bill", tol=30) -> Organisation:
    return Organisation(name="x", timezone="Europe/Paris", tolerance_min=tol,
                        rounding_mode=mode, rounding_step_min=step, overrun_policy=overrun)


def clocked(duration_min: float, org: Organisation, late_min: float = 0):
    a = START + timedelta(minutes=late_min)
    return retained_period(a, a + timedelta(minutes=duration_min), HOUR_VISIT, org)


def duration(period) -> int:
    return minutes(*period)


# -- the guide's examples ---------------------------------------------------------------------

def test_guide_1h05_is_retained_1h_with_quarter_hour_rounding():
    assert duration(clocked(65, rules("nearest", 15))) == 60


def test_guide_1h20_is_retained_1h30_with_half_hour_rounding():
    assert duration(clocked(80, rules("nearest", 30))) == 90


def test_guide_1h20_is_retained_1h_when_overruns_are_capped():
    assert duration(clocked(80, rules("none", overrun="cap"))) == 60
    assert duration(clocked(80, rules("nearest", 30, overrun="cap"))) == 60


# -- each rule ----------------------------------------------------------------------------------

def test_none_keeps_the_minute_and_drops_seconds():
    a = START + timedelta(minutes=3, seconds=59)
    b = START + timedelta(minutes=64, seconds=1)
    assert retained_period(a, b, HOUR_VISIT, rules()) == (
        START + timedelta(minutes=3), START + timedelta(minutes=64))


@pytest.mark.parametrize("clocked_min,step,retained", [
    (52, 15, 45), (53, 15, 60), (67, 15, 60), (68, 15, 75),  # 7.5 rounds up
    (74, 30, 60), (75, 30, 90), (44, 30, 30), (59, 1, 59), (5, 15, 0)])
def test_nearest_rounds_the_duration(clocked_min, step, retained):
    start, end = clocked(clocked_min, rules("nearest", step), late_min=4)
    assert start == START + timedelta(minutes=4)  # the start is the clocked one
    assert minutes(start, end) == retained


def test_planned_snaps_each_time_within_the_tolerance():
    org = rules("planned", tol=10)
    a, b = START + timedelta(minutes=8), START + timedelta(minutes=55, seconds=30)
    assert retained_period(a, b, HOUR_VISIT, org) == (START, START + timedelta(hours=1))
    late = START + timedelta(minutes=11, seconds=20)
    assert retained_period(late, b, HOUR_VISIT, org) == (START + timedelta(minutes=11),
                                                         START + timedelta(hours=1))


def test_cap_moves_the_end_back_and_billing_keeps_the_overrun():
    assert clocked(90, rules(overrun="cap"), late_min=10) == (
        START + timedelta(minutes=10), START + timedelta(minutes=70))
    assert duration(clocked(90, rules(overrun="bill"))) == 90
    assert duration(clocked(45, rules(overrun="cap"))) == 45  # shorter: untouched


def test_one_side_only_is_kept_alone():
    a = START + timedelta(minutes=2, seconds=30)
    for org in (rules("nearest", 30), rules(overrun="cap")):
        assert retained_period(a, None, HOUR_VISIT, org) == (START + timedelta(minutes=2), None)
        assert retained_period(None, a, HOUR_VISIT, org) == (None, START + timedelta(minutes=2))
    assert retained_period(None, None, HOUR_VISIT, rules()) == (None, None)
    assert retained_period(START + timedelta(minutes=5), None, HOUR_VISIT,
                           rules("planned")) == (START, None)


def test_a_departure_before_the_arrival_is_not_rounded():
    a, b = START + timedelta(minutes=30), START + timedelta(minutes=10)
    assert retained_period(a, b, HOUR_VISIT, rules("nearest", 15, "cap")) == (a, b)
