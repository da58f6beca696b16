"""Validation: a visit, or an agency's whole month, locked for pay and billing.

A validated record (`validated_at` set) refuses corrections (409) and keeps its retained period
when late events arrive, until it is reopened; validating and reopening are audited (actions
`validate` and `reopen`, target `visit:<id>` or `month:<organisation id>:<YYYY-MM>`). A month
is the visits whose planned start falls in it in the agency's time zone. The caller commits.
"""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from fleet import audit
from fleet.corrections import load_visit, record_of
from fleet.models import MonthValidation, Organisation, Visit, VisitRecord
from fleet.types import utcnow

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MAX_WHY = 2000


class ValidationRefused(Exception):
    """Refused, nothing changed: `status` is the HTTP status the API answers (404, 409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def is_locked(record: VisitRecord | None) -> bool:
    return record is not None and record.validated_at is not None


def month_of(visit: Visit, org: Organisation) -> str:
    return visit.planned_start.astimezone(ZoneInfo(org.timezone)).strftime("%Y-%m")


def month_bounds(org: Organisation, month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of `month` in the agency's zone."""
    m = _MONTH.match(month or "")
    if not m:
        raise ValidationRefused(422, f"month {month!r}: give it as YYYY-MM")
    y, mo = int(m.group(1)), int(m.group(2))
    tz = ZoneInfo(org.timezone)
    return (datetime(y, mo, 1, tzinfo=tz),
            datetime(y + mo // 12, mo % 12 + 1, 1, tzinfo=tz))


def open_month(session: Session, org_id: int, month: str) -> MonthValidation | None:
    """The month's validation in force (not reopened), if any."""
    return session.scalars(select(MonthValidation).where(
        MonthValidation.organisation_id == org_id, MonthValidation.month == month,
        MonthValidation.reopened_at.is_(None)).order_by(MonthValidation.id.desc())).first()


def locked_visit(session: Session, visit: Visit, record: VisitRecord | None) -> bool:
    """A visit refuses changes when its record is validated, or, having no record yet, when
    its month is (a record reopened on its own is open even in a validated month)."""
    if record is not None:
        return is_locked(record)
    org = session.get(Organisation, visit.organisation_id)
    return open_month(session, org.id, month_of(visit, org)) is not None


def _why(why: str | None) -> str:
    why = (why or "").strip()
    if not why:
        raise ValidationRefused(422, "say why it is reopened")
    if len(why) > MAX_WHY:
        raise ValidationRefused(422, f"the reason is over {MAX_WHY} characters")
    return why


def _visit(session: Session, visit: Visit | int, organisation_id: int | None) -> Visit:
    return load_visit(session, visit, organisation_id, refuse=ValidationRefused)


def validate_visit(session: Session, visit: Visit | int, who: str, role: str | None, *,
                   organisation_id: int | None = None) -> VisitRecord:
    """Lock `visit`'s record. 404 unknown or another agency's visit (`organisation_id`);
    409 no record yet (nothing clocked or corrected: correct it with CRE, or SUP), or already
    validated."""
    visit = _visit(session, visit, organisation_id)
    record = record_of(session, visit.id)
    if record is None:
        raise ValidationRefused(409, f"visit {visit.id} has nothing clocked or corrected to "
                                     "validate: correct it first (CRE, or SUP to delete it)")
    if is_locked(record):
        raise ValidationRefused(409, f"visit {visit.id} is already validated "
                                     f"({record.validated_who})")
    record.validated_at, record.validated_who = utcnow(), who[:200]
    audit.record(session, who, "validate", f"visit:{visit.id}", role=role,
                 detail={"retained_start": _iso(record.retained_start),
                         "retained_end": _iso(record.retained_end),
                         "correction_code": record.correction_code})
    return record


def reopen_visit(session: Session, visit: Visit | int, who: str, role: str | None,
                 why: str, *, organisation_id: int | None = None) -> VisitRecord:
    """Unlock `visit`'s record. 404 as validate_visit; 409 not validated; 422 no reason."""
    visit = _visit(session, visit, organisation_id)
    why = _why(why)
    record = record_of(session, visit.id)
    if not is_locked(record):
        raise ValidationRefused(409, f"visit {visit.id} is not validated")
    detail = {"validated_at": _iso(record.validated_at), "validated_who": record.validated_who}
    record.validated_at = record.validated_who = None
    audit.record(session, who, "reopen", f"visit:{visit.id}", role=role, why=why,
                 detail=detail)
    return record


def _org(session: Session, org: Organisation | int) -> Organisation:
    obj = org if isinstance(org, Organisation) else session.get(Organisation, org)
    if obj is None:
        raise ValidationRefused(404, f"organisation {org} not found")
    return obj


def _month_records(org: Organisation, lo: datetime, hi: datetime):
    return select(Visit.id).where(Visit.organisation_id == org.id, Visit.planned_start >= lo,
                                  Visit.planned_start < hi)


def validate_month(session: Session, org: Organisation | int, month: str, who: str,
                   role: str | None) -> MonthValidation:
    """Lock every record of `org`'s visits planned in `month` (YYYY-MM, the agency's time
    zone); records validated one by one before keep their own time. 422 bad month, 409 the
    month is already validated (reopen it first)."""
    org = _org(session, org)
    lo, hi = month_bounds(org, month)
    if open_month(session, org.id, month) is not None:
        raise ValidationRefused(409, f"{month} is already validated for {org.name}")
    now = utcnow()
    session.flush()
    visits = _month_records(org, lo, hi)
    newly = session.execute(
        update(VisitRecord).where(VisitRecord.visit_id.in_(visits),
                                  VisitRecord.validated_at.is_(None))
        .values(validated_at=now, validated_who=who[:200])
        .execution_options(synchronize_session="fetch")).rowcount
    total = session.scalar(select(func.count()).select_from(VisitRecord).where(
        VisitRecord.visit_id.in_(visits)))
    mv = MonthValidation(organisation_id=org.id, month=month, validated_at=now,
                         validated_who=who[:200], visits=total)
    session.add(mv)
    session.flush()
    audit.record(session, who, "validate", f"month:{org.id}:{month}", role=role,
                 detail={"month_validation": mv.id, "records": total, "newly": newly})
    return mv


def reopen_month(session: Session, org: Organisation | int, month: str, who: str,
                 role: str | None, why: str) -> MonthValidation:
    """Reopen `month`: every record of it is unlocked (those validated one by one too).
    422 bad month or no reason, 409 the month is not validated."""
    org = _org(session, org)
    lo, hi = month_bounds(org, month)
    why = _why(why)
    mv = open_month(session, org.id, month)
    if mv is None:
        raise ValidationRefused(409, f"{month} is not validated for {org.name}")
    now = utcnow()
    session.flush()
    count = session.execute(
        update(VisitRecord).where(VisitRecord.visit_id.in_(_month_records(org, lo, hi)),
                                  VisitRecord.validated_at.is_not(None))
        .values(validated_at=None, validated_who=None)
        .execution_options(synchronize_session="fetch")).rowcount
    mv.reopened_at, mv.reopened_who, mv.reopen_why = now, who[:200], why
    audit.record(session, who, "reopen", f"month:{org.id}:{month}", role=role, why=why,
                 detail={"month_validation": mv.id, "records": count})
    return mv


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None
