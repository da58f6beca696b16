"""The retained period of a visit: what pay and billing count, derived from the raw (actual)
clock times by the agency's rules (docs/data-model.md, "Raw and retained").

- `rounding_mode` `none`: the actual times to the minute (seconds dropped, as ESPPADOM
  receivers count "à la minute près").
- `nearest`: the start to the minute, and the DURATION rounded to the nearest
  `rounding_step_min` (a half step rounds up); the end is the start plus that duration.
- `planned`: each time snapped to the planned one when within `tolerance_min` of it, else to
  the minute.
- `overrun_policy` `cap`: the retained duration never exceeds the planned duration (the end
  moves back); `bill`: an overrun is retained as it is.

The guide's examples (tests/fleet/test_retained.py): a 1 h visit clocked 1 h 05 is retained
1 h with quarter-hour rounding; clocked 1 h 20 it is retained 1 h 30 with half-hour rounding,
1 h when overruns are capped.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol


class _Planned(Protocol):
    planned_start: datetime
    planned_end: datetime


class _Rules(Protocol):
    tolerance_min: int
    rounding_mode: str
    rounding_step_min: int
    overrun_policy: str


def to_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def minutes(start: datetime | None, end: datetime | None) -> int | None:
    """Whole minutes from start to end (None when either is missing)."""
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() // 60)


def _snap(actual: datetime, planned: datetime, org: _Rules) -> datetime:
    if org.rounding_mode == "planned" and abs(actual - planned) <= timedelta(
            minutes=org.tolerance_min):
        return planned
    return to_minute(actual)


def _round_minutes(total: int, step: int) -> int:
    """`total` minutes to the nearest multiple of `step`, a half step rounding up."""
    return (2 * total + step) // (2 * step) * step


def retained_period(actual_start: datetime | None, actual_end: datetime | None,
                    visit: _Planned, org: _Rules) -> tuple[datetime | None, datetime | None]:
    """(retained start, retained end) of a visit clocked `actual_start`..`actual_end` under
    `org`'s rules. A side that was not clocked stays None; with one side only, that side is
    kept to the minute (or snapped to planned), since a duration needs both."""
    start = _snap(actual_start, visit.planned_start, org) if actual_start else None
    end = _snap(actual_end, visit.planned_end, org) if actual_end else None
    if start is None or end is None:
        return start, end
    if end < start:  # clocks out of order (a device's clock moved): nothing to round
        return start, end
    if org.rounding_mode == "nearest" and org.rounding_step_min > 0:
        end = start + timedelta(minutes=_round_minutes(minutes(start, end),
                                                       org.rounding_step_min))
    if org.overrun_policy == "cap":
        planned = visit.planned_end - visit.planned_start
        if end - start > planned:
            end = start + planned
    return start, end
