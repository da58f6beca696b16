"""The tap decision table (docs/firmware.md), on CPython and MicroPython from one source."""
from firmware.decide import NO_VISIT_IN_S, REPEAT_S, decide
from firmware.planning import Planning

A, B, U = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA", "DEADBEEF"
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


def test_every_feedback_kind_is_reachable():
    seen = set()
    taps = {}
    for uid, dt in [(A, 0), (A, 5), (A, 600), (A, 20000), (A, 20600), (U, 0)]:
        seen.add(run(taps, uid, T + dt)[2])
    for feedback in ["in", "out", "unplanned_in", "unplanned_out", "unknown", "repeat"]:
        assert feedback in seen, feedback


def test_a_day_of_taps_with_an_unplanned_badge():
    p = Planning.from_config({"version": 3, "tz": "Europe/Paris", "tolerance_min": 30,
                              "badges": [A, B], "visits": [[11, A, T, T + 3600],
                                                           [15, A, T + 3600, T + 7200],
                                                           [14, U, T, T + 600]]})
    taps = {}

    def tap(uid, now):
        d = decide(p, taps, uid, now)
        taps[uid] = (now, d.dir, d.visit, d.until)
        return d.dir, d.visit, d.feedback

    assert tap(A, T) == ("in", 11, "in")
    assert tap(A, T + 5) == ("in", 11, "repeat")
    assert tap(A, T + 600) == ("out", 11, "out")
    assert tap(B, T) == ("in", None, "unplanned_in")
    assert tap(B, T + 60) == ("out", None, "unplanned_out")
    assert tap(U, T) == ("in", 14, "unknown")
    assert tap(B, T + 60 + 14 * 3600) == ("in", None, "unplanned_in")  # after an out, an in
    assert tap(B, T + 120 + 28 * 3600 + 1) == ("in", None, "unplanned_in")  # expired after 14 h


# -- the edges docs/firmware.md states, in its own numbers (issue #14 item 12: a mutation run
# moved REPEAT_S and NO_VISIT_IN_S by one and flipped the repeat window's bounds unseen) -----

def test_the_stated_windows_are_10_s_and_14_h():
    assert (REPEAT_S, NO_VISIT_IN_S) == (10, 14 * 3600)


def test_the_double_tap_window_on_both_sides():
    for gap, expected in [
        (0, ("in", 7, "repeat")),  # the same second: a double tap
        (9, ("in", 7, "repeat")),  # "less than 10 s after its last tap"
        (10, ("out", 7, "out")),  # 10 s is no longer a double tap: a toggle
    ]:
        taps = {}
        run(taps, A, T)
        assert run(taps, A, T + gap) == expected, gap


def test_an_unplanned_in_lasts_14_h_exactly():
    for gap, expected in [
        (14 * 3600, ("out", None, "unplanned_out")),  # still in at 14 h exactly
        (14 * 3600 + 1, ("in", None, "unplanned_in")),  # forgotten one second later
    ]:
        taps = {}
        start = T + 10 * 3600
        assert run(taps, A, start) == ("in", None, "unplanned_in")
        assert taps[A][3] == start + 14 * 3600
        assert run(taps, A, start + gap) == expected, gap
