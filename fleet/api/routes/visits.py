"""Visits: planning by hand or by CSV import."""
from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from sqlalchemy import select

from fleet import visits
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, PageDep, SessionDep
from fleet.api.schemas import VisitDetailOut, VisitIn, VisitOut, VisitPatch
from fleet.models import Client, Visit
from fleet.visit_detail import visit_detail
from fleet.visit_import import ImportFileError, parse_planning

router = APIRouter()


@router.post("/visits", status_code=201, response_model=VisitOut, dependencies=[PLANNERS],
             tags=["visits"])
def create_visit(body: VisitIn, session: SessionDep, key: KeyDep):
    client = session.get(Client, body.client_id)
    if client is None:
        raise HTTPException(422, f"client {body.client_id} not found")
    org = data.org_for_write(session, key, client.organisation_id)
    with data.refused():
        visit = visits.create(session, org, **body.model_dump(), who=data.who(key))
    session.commit()
    return visit


@router.get("/visits", tags=["visits"])
def list_visits(session: SessionDep, key: KeyDep, page: PageDep, day: date | None = None,
                client_id: int | None = None, caregiver_id: int | None = None,
                status: str | None = None, organisation_id: int | None = None) -> dict:
    stmt = data.scope(select(Visit).order_by(Visit.planned_start, Visit.id), key,
                      Visit.organisation_id)
    if day is not None:
        stmt = stmt.where(data.day_clause(session, key, day, Visit.planned_start,
                                          Visit.organisation_id, organisation_id))
    for col, val in ((Visit.client_id, client_id), (Visit.caregiver_id, caregiver_id),
                     (Visit.status, status), (Visit.organisation_id, organisation_id)):
        if val is not None:
            stmt = stmt.where(col == val)
    return data.page(session, stmt, page.limit, page.offset, VisitOut.model_validate)


@router.get("/visits/{visit_id}", response_model=VisitDetailOut, tags=["visits"])
def get_visit(visit_id: int, session: SessionDep, key: KeyDep):
    """The visit's fields, and everything about it (fleet.visit_detail)."""
    visit = data.get_scoped(session, key, Visit, visit_id)
    return {**visit_detail(session, visit),
            **VisitOut.model_validate(visit).model_dump(mode="json")}


@router.patch("/visits/{visit_id}", response_model=VisitOut, dependencies=[PLANNERS],
              tags=["visits"])
def update_visit(visit_id: int, body: VisitPatch, session: SessionDep, key: KeyDep):
    visit = data.get_scoped(session, key, Visit, visit_id)
    with data.refused():
        visits.update(session, visit, body.model_dump(exclude_unset=True), who=data.who(key))
    session.commit()
    return visit


@router.post("/visits/import", dependencies=[PLANNERS], tags=["visits"])
async def import_visits(session: SessionDep, key: KeyDep,
                        file: Annotated[UploadFile, File(description="the planning, CSV")],
                        dry_run: Annotated[bool, Query()] = False,
                        organisation_id: int | None = None) -> dict:
    raw = await data.read_upload(file)
    org = data.org_for_write(session, key, organisation_id)
    try:
        result = parse_planning(session, org, raw)
    except ImportFileError as e:
        raise HTTPException(422, e.errors) from None
    created = []
    if not dry_run and result.visits:
        with data.refused():
            made = visits.create_many(session, org, result.visits, who=data.who(key))
        created = list(zip(result.visits, made))
        data.audit(session, key, "import", f"organisation:{org.id}",
                   {"file": file.filename, "created": len(created),
                    "errors": len(result.errors)})
        session.commit()
    ids = {id(v): visit.id for v, visit in created}
    return {"dry_run": dry_run, "encoding": result.encoding, "delimiter": result.delimiter,
            "rows": result.rows, "valid": len(result.visits), "created": len(created),
            "errors": result.errors,
            "visits": [{"row": v["row"], "id": ids.get(id(v)), "client": v["client"],
                        "caregiver": v["caregiver"], "service": v["service"],
                        "planned_start": v["start"].isoformat(),
                        "planned_end": v["end"].isoformat()} for v in result.visits]}
