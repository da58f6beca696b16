"""What a tap means: in or out, which visit, which feedback. Pure: no I/O, no clock.

The per-badge state `taps` maps a badge UID to its last journaled tap, a tuple
(ts, dir, visit, until): `until` is when an "in" stops keeping the badge in (the visit's end
plus the tolerance, or 14 h when no visit was matched). The caller records a tap only once it
is journaled, so a refused tap changes nothing.
"""
try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

REPEAT_S = const(10)  # a second tap within this is a double tap, not a toggle
NO_VISIT_IN_S = const(14 * 3600)  # an unplanned "in" is forgotten after a long shift

FEEDBACKS = ("in", "out", "unplanned_in", "unplanned_out", "unknown", "repeat")


class Decision:
    __slots__ = ("dir", "visit", "feedback", "until")

    def __init__(self, dir, visit, feedback, until):
        self.dir = dir
        self.visit = visit
        self.feedback = feedback
        self.until = until

    def __repr__(self):
        return "Decision(%r, %r, %r, %r)" % (self.dir, self.visit, self.feedback, self.until)


def in_until(planning, visit, ts):
    """Until when an "in" at `ts` for `visit` (or None) keeps the badge in."""
    end = planning.visit_end(visit) if visit is not None else None
    if end is None:
        return ts + NO_VISIT_IN_S
    return end + planning.tolerance_s


def decide(planning, taps, uid, now):
    last = taps.get(uid)
    if last is not None and last[0] <= now < last[0] + REPEAT_S:
        # Same badge again at once: keep the previous direction, the fleet flags the double.
        return Decision(last[1], last[2], "repeat", last[3])
    if last is not None and last[1] == "in" and now <= last[3]:
        visit = last[2]
        if visit is None:
            visit = planning.visit_for(uid, now)
        d = Decision("out", visit, "out", 0)
    else:
        visit = planning.visit_for(uid, now)
        d = Decision("in", visit, "in", in_until(planning, visit, now))
    if not planning.known(uid):
        d.feedback = "unknown"  # refused pattern, but journaled: the allow-list can be stale
    elif visit is None:
        d.feedback = "unplanned_" + d.dir
    return d
