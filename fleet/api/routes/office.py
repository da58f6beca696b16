"""The office side: corrections with ESPPADOM codes, validation of a visit or a month, the
review list (fleet.corrections, fleet.validation, fleet.review; docs/api.md)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query

from fleet import corrections, review, validation
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, SessionDep
from fleet.api.schemas import (CorrectionIn, CorrectionOut, MonthValidationOut, ValidationOut,
                               WhyIn)
from fleet.models import Organisation, Visit
from fleet.types import utcnow

router = APIRouter(tags=["office"])
MAX_RANGE = timedelta(days=400)
Refused = (corrections.CorrectionRefused, validation.ValidationRefused)


def _refused(session, e: corrections.CorrectionRefused | validation.ValidationRefused):
    session.rollback()
    return HTTPException(e.status, e.message)


@router.post("/visits/{visit_id}/corrections", status_code=201, response_model=CorrectionOut,
             dependencies=[PLANNERS])
def correct_visit(visit_id: int, body: CorrectionIn, session: SessionDep, key: KeyDep):
    try:
        fix = corrections.correct(session, visit_id, code=body.code, arrival=body.arrival,
                                  departure=body.departure, why=body.why or "",
                                  who=data.who(key), role=key.role,
                                  organisation_id=key.organisation_id)
    except Refused as e:
        raise _refused(session, e) from None
    session.commit()
    return fix


@router.get("/visits/{visit_id}/corrections")
def list_corrections(visit_id: int, session: SessionDep, key: KeyDep) -> dict:
    visit = data.get_scoped(session, key, Visit, visit_id)
    items = [CorrectionOut.model_validate(c).model_dump(mode="json")
             for c in corrections.history(session, visit.id)]
    return {"items": items, "total": len(items),
            "suggested_code": corrections.suggest_code(
                visit, corrections.record_of(session, visit.id)),
            "codes": {k: list(v) for k, v in corrections.CODES.items()}}


def _validation(visit_id: int, record) -> ValidationOut:
    return ValidationOut(visit_id=visit_id, validated=record.validated_at is not None,
                         validated_at=record.validated_at, validated_who=record.validated_who)


@router.post("/visits/{visit_id}/validate", response_model=ValidationOut,
             dependencies=[PLANNERS])
def validate_visit(visit_id: int, session: SessionDep, key: KeyDep):
    try:
        record = validation.validate_visit(session, visit_id, data.who(key), key.role,
                                           organisation_id=key.organisation_id)
    except Refused as e:
        raise _refused(session, e) from None
    session.commit()
    return _validation(visit_id, record)


@router.post("/visits/{visit_id}/reopen", response_model=ValidationOut, dependencies=[PLANNERS])
def reopen_visit(visit_id: int, body: WhyIn, session: SessionDep, key: KeyDep):
    try:
        record = validation.reopen_visit(session, visit_id, data.who(key), key.role,
                                         body.why or "", organisation_id=key.organisation_id)
    except Refused as e:
        raise _refused(session, e) from None
    session.commit()
    return _validation(visit_id, record)


@router.post("/months/{month}/validate", status_code=201, response_model=MonthValidationOut,
             dependencies=[PLANNERS])
def validate_month(month: str, session: SessionDep, key: KeyDep,
                   organisation_id: int | None = None):
    org = data.org_for_write(session, key, organisation_id)
    try:
        mv = validation.validate_month(session, org, month, data.who(key), key.role)
    except Refused as e:
        raise _refused(session, e) from None
    session.commit()
    return mv


@router.post("/months/{month}/reopen", response_model=MonthValidationOut,
             dependencies=[PLANNERS])
def reopen_month(month: str, body: WhyIn, session: SessionDep, key: KeyDep,
                 organisation_id: int | None = None):
    org = data.org_for_write(session, key, organisation_id)
    try:
        mv = validation.reopen_month(session, org, month, data.who(key), key.role,
                                     body.why or "")
    except Refused as e:
        raise _refused(session, e) from None
    session.commit()
    return mv


def _instant(text: str, org: Organisation, what: str, end: bool) -> datetime:
    """A date (the agency's day; `to` includes it) or a time with its offset."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None:
        return datetime.combine(day + timedelta(days=1 if end else 0), time(0),
                                ZoneInfo(org.timezone))
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise HTTPException(422, f"{what} {text!r}: give a date (YYYY-MM-DD) or a time with "
                                 "its offset (2026-11-23T10:00:00+01:00)")
    return t


@router.get("/review")
def review_list(session: SessionDep, key: KeyDep,
                from_: Annotated[str | None, Query(alias="from")] = None,
                to: str | None = None,
                kind: Annotated[list[str] | None, Query()] = None,
                proof: Annotated[list[str] | None, Query()] = None,
                organisation_id: int | None = None) -> dict:
    """What to review between `from` and `to` (default: the current month so far), of some
    kinds and some proof levels (each repeated or comma-separated) if given."""
    org = data.org_for_write(session, key, organisation_id)
    tz = ZoneInfo(org.timezone)
    now = utcnow().astimezone(tz)
    start = _instant(from_, org, "from", False) if from_ else \
        datetime(now.year, now.month, 1, tzinfo=tz)
    end = _instant(to, org, "to", True) if to else now + timedelta(days=1)
    if end <= start:
        raise HTTPException(422, "`to` must be after `from`")
    if end - start > MAX_RANGE:
        raise HTTPException(422, f"at most {MAX_RANGE.days} days at a time")
    kinds = {k.strip() for ks in (kind or []) for k in ks.split(",") if k.strip()}
    proofs = {p.strip() for ps in (proof or []) for p in ps.split(",") if p.strip()}
    try:
        items = review.review_items(session, org, start, end, kinds or None, proofs or None)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    return {"items": [i.as_dict() for i in items], "total": len(items),
            "from": start.isoformat(), "to": end.isoformat()}
