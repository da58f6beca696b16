"""The tap decision table (docs/firmware.md)."""
import pytest

from firmware.decide import NO_VISIT_IN_S, REPEAT_S, decide
from firmware.planning import Planning

A, U = "04A1B2C3D4E5F6", "DEADBEEF"
T = 1795420000
P = Planning.from_config({"version": 1, "tolerance_min": 30, "badges": [A],
                          "visits": [[7, A, T, T + 3600], [8, U, T, T + 3600]]})


def run(taps, uid, now):
    d = decide(P, taps, uid, now)
    taps[uid] = (now, d.dir, d.visit, d.until)
    return d.dir, d.visit, d.feedback


def test_planned_in_then_out():
    taps = {}
    assert run(taps, A, T) == ("in", 7, "in")
    assert taps[A][3] == T + 3600 + 1800  # the "in" lasts until the visit's end + tolerance
    assert run(taps, A, T + 3500) == ("out", 7, "out")
    assert run(taps, A, T + 3600) == ("in", 7, "in")  # a new arrival, 100 s later


def test_repeat_keeps_direction():
    taps = {}
    run(taps, A, T)
    assert run(taps, A, T + REPEAT_S - 1) == ("in", 7, "repeat")
    assert run(taps, A, T + 2 * REPEAT_S - 2) == ("in", 7, "repeat")
    assert run(taps, A, T + 3 * REPEAT_S) == ("out", 7, "out")
    assert run(taps, A, T + 3 * REPEAT_S + 1) == ("out", 7, "repeat")


def test_unplanned():
    taps = {}
    assert run(taps, A, T + 10 * 3600) == ("in", None, "unplanned_in")
    assert taps[A][3] == T + 10 * 3600 + NO_VISIT_IN_S
    assert run(taps, A, T + 11 * 3600) == ("out", None, "unplanned_out")


def test_unplanned_in_expires_after_14h():
    taps = {}
    run(taps, A, T + 10 * 3600)
    assert run(taps, A, T + 10 * 3600 + NO_VISIT_IN_S + 1) == ("in", None, "unplanned_in")


def test_planned_in_expires_after_end_plus_tolerance():
    taps = {}
    run(taps, A, T)
    assert run(taps, A, T + 3600 + 1801) == ("in", None, "unplanned_in")


def test_unplanned_in_then_out_during_a_visit():
    taps = {}
    assert run(taps, A, T - 3 * 3600) == ("in", None, "unplanned_in")
    assert run(taps, A, T + 60) == ("out", 7, "out")


def test_unknown_badge_is_decided_all_the_same():
    taps = {}
    assert run(taps, U, T) == ("in", 8, "unknown")
    assert run(taps, U, T + 60) == ("out", 8, "unknown")
    assert run(taps, "0102030405", T) == ("in", None, "unknown")


def test_out_at_the_planned_end_is_not_a_new_in():
    taps = {}
    run(taps, A, T)
    assert run(taps, A, T + 3600 + 1800) == ("out", 7, "out")


def test_clock_set_back_is_not_a_repeat():
    taps = {A: (T + 100, "in", 7, T + 5400)}
    assert run(taps, A, T + 50) == ("out", 7, "out")


@pytest.mark.parametrize("feedback", ["in", "out", "unplanned_in", "unplanned_out", "unknown",
                                      "repeat"])
def test_every_feedback_kind_is_reachable(feedback):
    seen = set()
    taps = {}
    for uid, dt in [(A, 0), (A, 5), (A, 600), (A, 20000), (A, 20600), (U, 0)]:
        seen.add(run(taps, uid, T + dt)[2])
    assert feedback in seen


# -- the edges docs/firmware.md states, in its own numbers (issue #14 item 12: a mutation run
# moved REPEAT_S and NO_VISIT_IN_S by one and flipped the repeat window's bounds unseen) -----

def test_the_stated_windows_are_10_s_and_14_h():
    assert (REPEAT_S, NO_VISIT_IN_S) == (10, 14 * 3600)


@pytest.mark.parametrize("gap, expected", [
    (0, ("in", 7, "repeat")),  # the same second: a double tap
    (9, ("in", 7, "repeat")),  # "less than 10 s after its last tap"
    (10, ("out", 7, "out")),  # 10 s is no longer a double tap: a toggle
])
def test_the_double_tap_window_on_both_sides(gap, expected):
    taps = {}
    run(taps, A, T)
    assert run(taps, A, T + gap) == expected


@pytest.mark.parametrize("gap, expected", [
    (14 * 3600, ("out", None, "unplanned_out")),  # still in at 14 h exactly
    (14 * 3600 + 1, ("in", None, "unplanned_in")),  # forgotten one second later
])
def test_an_unplanned_in_lasts_14_h_exactly(gap, expected):
    taps = {}
    start = T + 10 * 3600
    assert run(taps, A, start) == ("in", None, "unplanned_in")
    assert taps[A][3] == start + 14 * 3600
    assert run(taps, A, start + gap) == expected
