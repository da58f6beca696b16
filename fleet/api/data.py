"""Data functions of the API: scoped lookups, pagination, audit. No HTTP here except errors."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi import HTTPException
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from fleet.directory import PlanningError
from fleet.models import ApiKey, AuditLog, Organisation


MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # a CSV upload (the planning, the home points)


async def read_upload(file, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    """An uploaded file's bytes; 413 past `limit`, without reading more than one byte beyond."""
    raw = await file.read(limit + 1)
    if len(raw) > limit:
        raise HTTPException(413, f"the file is over {limit} bytes")
    return raw


def who(key: ApiKey) -> str:
    return f"api_key:{key.id}:{key.label}"[:200]


def audit(session: Session, key: ApiKey, action: str, target: str, detail: dict | None = None,
          why: str | None = None) -> None:
    session.add(AuditLog(who=who(key), action=action, target=target, detail=detail, why=why))


@contextmanager
def refused() -> Iterator[None]:
    """A refusal of the planning layer (fleet.visits, fleet.directory) as its HTTP answer; the
    request's session is rolled back, so nothing is changed."""
    try:
        yield
    except PlanningError as e:
        raise HTTPException(e.status, e.message) from None


def org_for_write(session: Session, key: ApiKey, organisation_id: int | None) -> Organisation:
    """The organisation a new thing belongs to: the key's, or the one named by an admin key."""
    if key.organisation_id is not None:
        if organisation_id not in (None, key.organisation_id):
            raise HTTPException(403, "this API key belongs to another organisation")
        organisation_id = key.organisation_id
    if organisation_id is None:
        raise HTTPException(422, "organisation_id is required with a key of no organisation")
    org = session.get(Organisation, organisation_id)
    if org is None:
        raise HTTPException(404, f"organisation {organisation_id} not found")
    return org


def get_scoped(session: Session, key: ApiKey, model, id_: int):
    obj = session.get(model, id_)
    org_id = None
    if obj is not None:
        org_id = obj.id if isinstance(obj, Organisation) else obj.organisation_id
    if obj is None or (key.organisation_id is not None and org_id != key.organisation_id):
        raise HTTPException(404, f"{model.__tablename__[:-1]} {id_} not found")
    return obj


def same_org(session: Session, model, id_: int | None, org_id: int, what: str):
    if id_ is None:
        return None
    obj = session.get(model, id_)
    if obj is None or obj.organisation_id != org_id:
        raise HTTPException(422, f"{what} {id_} not found in organisation {org_id}")
    return obj


def scope(stmt: Select, key: ApiKey, column) -> Select:
    return stmt if key.organisation_id is None else stmt.where(column == key.organisation_id)


def day_clause(session: Session, key: ApiKey, day: date, time_col, org_col,
               organisation_id: int | None = None):
    """`time_col` falls on `day` in the time zone of the row's organisation."""
    orgs = select(Organisation)
    if key.organisation_id is not None:
        orgs = orgs.where(Organisation.id == key.organisation_id)
    if organisation_id is not None:
        orgs = orgs.where(Organisation.id == organisation_id)
    clauses = []
    for org in session.scalars(orgs):
        lo = datetime.combine(day, time(0), ZoneInfo(org.timezone))
        hi = datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(org.timezone))
        clauses.append((org_col == org.id) & (time_col >= lo) & (time_col < hi))
    return or_(*clauses) if clauses else false()


def page(session: Session, stmt: Select, limit: int, offset: int, dump) -> dict:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = session.scalars(stmt.limit(limit).offset(offset)).all()
    return {"items": [dump(r) for r in rows], "total": total, "limit": limit, "offset": offset}
