"""The compact planning: allow-list and visit windows (CPython and MicroPython, one source)."""
from firmware.planning import Planning
from tests.firmware.support import raises

A, B, C = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA", "DEADBEEF"
T = 1795420000
CFG = {"version": 3, "tz": "Europe/Paris", "tolerance_min": 30, "badges": [A, B],
       "visits": [[11, A, T, T + 3600], [12, A, T + 4 * 3600, T + 5 * 3600],
                  [13, B, T, T + 1800], [14, C, T, T + 600], [15, A, T + 3600, T + 7200]]}


def test_known():
    p = Planning.from_config(CFG)
    assert p.known(A) and p.known(B) and p.known(A.lower())
    assert not p.known(C)  # planned but not allow-listed
    assert not p.known("0102030405") and not p.known("zz") and not p.known("")
    assert (p.version, p.tz, p.tolerance_s, len(p)) == (3, "Europe/Paris", 1800, 5)


def test_visit_windows():
    p = Planning.from_config(CFG)
    assert p.visit_for(A, T - 1800) == 11  # window opens at start - tolerance
    assert p.visit_for(A, T - 1801) is None
    assert p.visit_for(A, T + 3000) == 15  # 11 and 15 both hold it: 15 starts closer
    assert p.visit_for(A, T + 1000) == 11
    assert p.visit_for(A, T + 7200 + 1800) == 15  # window closes at end + tolerance
    assert p.visit_for(A, T + 7200 + 1801) is None
    assert p.visit_for(A, T + 4 * 3600 + 10) == 12
    assert p.visit_for(A, T - 1000, tolerance_s=0) is None
    assert p.visit_for(B, T + 100) == 13
    assert p.visit_for(C, T + 100) == 14
    assert p.visit_for("0102030405", T) is None
    assert p.visit_end(12) == T + 5 * 3600 and p.visit_end(99) is None


def test_empty_planning():
    p = Planning()
    assert not p.known(A) and p.visit_for(A, T) is None and len(p) == 0
    assert Planning.from_config({"version": 1, "tolerance_min": 0, "badges": [],
                                 "visits": []}).visit_for(A, T) is None


def test_bad_config():
    for cfg in [
        {}, [], {"version": 1}, {"version": 1, "tolerance_min": 30, "badges": []},
        {"version": "1", "tolerance_min": 30, "badges": [], "visits": []},
        {"version": 1, "tolerance_min": 30, "badges": ["XYZ"], "visits": []},
        {"version": 1, "tolerance_min": 1, "badges": ["XY"], "visits": []},
        {"version": 1, "tolerance_min": 30, "badges": [], "visits": [[1, A, T]]},
        {"version": 1, "tolerance_min": 30, "badges": [], "visits": [[1, A, "T", T]]},
        {"version": 1, "tolerance_min": 30, "badges": [], "visits": [[1, 7, T, T]]},
    ]:
        with raises(ValueError):
            Planning.from_config(cfg)


def test_back_to_back_visits_and_a_planned_badge_not_allow_listed():
    p = Planning.from_config({"version": 3, "tz": "Europe/Paris", "tolerance_min": 30,
                              "badges": [A, B], "visits": [[11, A, T, T + 3600],
                                                           [15, A, T + 3600, T + 7200],
                                                           [14, C, T, T + 600]]})
    assert p.known(A) and p.known(A.lower()) and not p.known(C)
    assert p.visit_for(A, T - 1800) == 11  # the window opens
    assert p.visit_for(A, T - 1801) is None
    assert p.visit_for(A, T + 3000) == 15  # the closest start
    assert p.visit_for(A, T + 9000) == 15  # the window closes
    assert p.visit_for(A, T + 9001) is None
    assert p.visit_for(C, T) == 14  # planned, not allow-listed
    assert p.visit_end(15) == T + 7200


def test_large_planning():
    badges = ["04%012X" % (i * 7919) for i in range(200)]
    visits = [[i, badges[i % 200], T + (i // 200) * 7200, T + (i // 200) * 7200 + 3600]
              for i in range(500)]
    p = Planning.from_config({"version": 1, "tolerance_min": 30, "badges": badges,
                              "visits": visits})
    assert all(p.known(b) for b in badges)
    assert p.visit_for(badges[3], T + 7200 + 100) == 203
    assert p.visit_for(badges[3], T + 100) == 3
    offset = [[100000 + i, b, s, e] for i, b, s, e in visits]  # ids past 16 bits
    p = Planning.from_config({"version": 1, "tolerance_min": 30, "badges": badges,
                              "visits": offset})
    assert p.visit_for(badges[3], T + 7200 + 100) == 100203
