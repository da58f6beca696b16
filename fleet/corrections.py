"""Corrections of a visit's retained period with an ESPPADOM code (ESPPADOM_EFFECTIVITY_AJUST).

One data layer for the API, the console and the CLI; the caller commits. Raw clock events and
the actual (clocked) times are never touched: a correction sets the record's retained period,
keeps the record as it was before and after, supersedes the previous correction of the visit
(a correction can itself be corrected) and is audited (action `correct`, target `visit:<id>`).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import Organisation, Visit, VisitCorrection, VisitRecord
from fleet.retained import retained_period, to_minute
from fleet.types import utcnow

# code -> (English label, French label); HOR (raw clocking only) is for exports, not a correction
CODES: dict[str, tuple[str, str]] = {
    "CRE": ("a visit nobody clocked, created", "création d'une intervention non horodatée"),
    "MDT": ("a change other than the times", "modification autre que les horaires"),
    "SUP": ("visit deleted", "suppression de l'intervention"),
    "COA": ("arrival not clocked", "correction : arrivée non horodatée"),
    "COD": ("departure not clocked", "correction : départ non horodaté"),
    "CO2": ("arrival and departure not clocked",
            "correction : arrivée et départ non horodatés"),
}
# which of (arrival, departure) the code must be given
_NEEDS = {"CRE": (True, True), "CO2": (True, True), "COA": (True, False),
          "COD": (False, True), "MDT": (False, False), "SUP": (False, False)}
MAX_WHY = 2000
# a corrected time further than this from the planned one belongs to another visit
_FAR = timedelta(hours=24)


class CorrectionRefused(Exception):
    """Refused, nothing changed: `status` is the HTTP status the API answers (404, 409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def suggest_code(visit: Visit, record: VisitRecord | None) -> str:
    """The code what is missing calls for: no record -> CRE, neither time clocked -> CO2,
    no arrival -> COA, no departure -> COD, both clocked -> MDT."""
    if record is None:
        return "CRE"
    if record.actual_start is None and record.actual_end is None:
        return "CO2"
    if record.actual_start is None:
        return "COA"
    if record.actual_end is None:
        return "COD"
    return "MDT"


def snapshot(visit: Visit, record: VisitRecord | None) -> dict:
    """The record as it stands (JSON-able): what `before` and `after` keep."""
    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t else None

    if record is None:
        return {"record": None, "visit_status": visit.status}
    return {"actual_start": iso(record.actual_start), "actual_end": iso(record.actual_end),
            "retained_start": iso(record.retained_start),
            "retained_end": iso(record.retained_end), "status": record.status,
            "visit_status": visit.status, "correction_code": record.correction_code,
            "correction_reason": record.correction_reason}


def record_of(session: Session, visit_id: int) -> VisitRecord | None:
    return session.scalars(select(VisitRecord).where(VisitRecord.visit_id == visit_id)).first()


def load_visit(session: Session, visit: Visit | int, organisation_id: int | None,
               refuse=CorrectionRefused) -> Visit:
    """The visit, or a 404 when it does not exist or is another agency's."""
    vid = visit.id if isinstance(visit, Visit) else visit
    obj = visit if isinstance(visit, Visit) else session.get(Visit, visit)
    if obj is None or (organisation_id is not None and obj.organisation_id != organisation_id):
        raise refuse(404, f"visit {vid} not found")
    return obj


def current_retained(visit: Visit, record: VisitRecord | None,
                     org: Organisation) -> tuple[datetime | None, datetime | None]:
    """The retained period in force, computed from the actual times when none is stored."""
    if record is None:
        return None, None
    if record.retained_start or record.retained_end or record.correction_code:
        return record.retained_start, record.retained_end
    return retained_period(record.actual_start, record.actual_end, visit, org)


def _time(value: datetime | None, what: str, near: datetime) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise CorrectionRefused(422, f"{what} must be a time with its offset "
                                     "(e.g. 2026-11-23T10:00:00+01:00)")
    if abs(value - near) > _FAR:
        raise CorrectionRefused(422, f"{what} {value.isoformat()} is more than a day from the "
                                     "planned time: is it the right visit?")
    return to_minute(value.astimezone(timezone.utc))


def _times(code: str, arrival: datetime | None, departure: datetime | None,
           visit: Visit, current: tuple[datetime | None, datetime | None]
           ) -> tuple[datetime | None, datetime | None]:
    """The retained period the correction leaves, by what `code` must and may change."""
    if code == "SUP":
        return None, None
    need_a, need_d = _NEEDS[code]
    label = CODES[code][0]
    if need_a and arrival is None:
        raise CorrectionRefused(422, f"{code} ({label}) needs the arrival time")
    if need_d and departure is None:
        raise CorrectionRefused(422, f"{code} ({label}) needs the departure time")
    if code == "MDT" and ((arrival and arrival != current[0])
                          or (departure and departure != current[1])):
        raise CorrectionRefused(422, "MDT changes something other than the times: to change "
                                     "a time use COA, COD or CO2")
    start = arrival if arrival is not None else current[0]
    end = departure if departure is not None else current[1]
    if start is not None and end is not None and end <= start:
        raise CorrectionRefused(422, f"departure {end.isoformat()} is not after arrival "
                                     f"{start.isoformat()}")
    return start, end


def correct(session: Session, visit: Visit | int, *, code: str | None = None,
            arrival: datetime | None = None, departure: datetime | None = None, why: str,
            who: str, role: str | None, organisation_id: int | None) -> VisitCorrection:
    """Correct `visit`'s retained period with ESPPADOM `code` (None: the suggested one).

    `organisation_id` is the caller's agency (None: any, an admin of no organisation); a time
    not given keeps the retained one in force; SUP ignores the times. Refusals (nothing changed): 404 visit not
    found or another agency's; 409 validated (reopen it first); 422 unknown code, empty
    `why`, a time the code needs missing, departure not after arrival, a time more than a day
    from the planned one. The caller commits."""
    from fleet.validation import locked_visit  # validation imports this module

    visit = load_visit(session, visit, organisation_id)
    record = record_of(session, visit.id)
    code = (code or suggest_code(visit, record)).strip().upper()
    if code not in CODES:
        raise CorrectionRefused(422, f"unknown correction code {code!r}: one of "
                                     f"{', '.join(CODES)}" + (" (HOR is for exports only)"
                                                              if code == "HOR" else ""))
    why = (why or "").strip()
    if not why:
        raise CorrectionRefused(422, "say why (the reason is kept with the correction)")
    if len(why) > MAX_WHY:
        raise CorrectionRefused(422, f"the reason is over {MAX_WHY} characters")
    if locked_visit(session, visit, record):
        raise CorrectionRefused(409, f"visit {visit.id} is validated: reopen it to correct it")
    org = session.get(Organisation, visit.organisation_id)
    arrival = _time(arrival, "arrival", visit.planned_start)
    departure = _time(departure, "departure", visit.planned_end)
    start, end = _times(code, arrival, departure, visit, current_retained(visit, record, org))

    before = snapshot(visit, record)
    now = utcnow()
    if record is None:
        record = VisitRecord(visit_id=visit.id, status="incomplete")
        session.add(record)
    record.retained_start, record.retained_end = start, end
    record.correction_code, record.correction_reason = code, why
    record.corrected_who, record.corrected_at = who[:200], now
    if code == "SUP":
        visit.status = "cancelled"
    elif start is not None and end is not None:
        record.status, visit.status = "done", "done"
    previous = session.scalars(select(VisitCorrection.id).where(
        VisitCorrection.visit_id == visit.id).order_by(VisitCorrection.id.desc())).first()
    fix = VisitCorrection(visit_id=visit.id, organisation_id=visit.organisation_id, code=code,
                          arrival=start, departure=end, why=why, who=who[:200], role=role,
                          at=now, before=before, after=snapshot(visit, record),
                          supersedes_id=previous)
    session.add(fix)
    session.flush()
    audit.record(session, who, "correct", f"visit:{visit.id}", role=role, why=why,
                 detail={"correction": fix.id, "code": code, "supersedes": previous,
                         "before": fix.before, "after": fix.after})
    return fix


def history(session: Session, visit_id: int) -> list[VisitCorrection]:
    """A visit's corrections, newest (the one in force) first."""
    return list(session.scalars(select(VisitCorrection).where(
        VisitCorrection.visit_id == visit_id).order_by(VisitCorrection.id.desc())))
