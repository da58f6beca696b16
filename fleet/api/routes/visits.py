"""Visits: planning by hand or by CSV import."""
from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from sqlalchemy import select

from fleet import webhooks
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, PageDep, SessionDep
from fleet.api.schemas import VisitDetailOut, VisitIn, VisitOut, VisitPatch
from fleet.corrections import record_of
from fleet.models import Caregiver, Client, Service, Visit
from fleet.validation import locked_visit
from fleet.visit_detail import visit_detail
from fleet.visit_import import ImportFileError, parse_planning

router = APIRouter()


def _check_refs(session, org_id: int, client_id, caregiver_id, service_id) -> None:
    data.same_org(session, Client, client_id, org_id, "client")
    data.same_org(session, Caregiver, caregiver_id, org_id, "caregiver")
    data.same_org(session, Service, service_id, org_id, "service")


@router.post("/visits", status_code=201, response_model=VisitOut, dependencies=[PLANNERS],
             tags=["visits"])
def create_visit(body: VisitIn, session: SessionDep, key: KeyDep):
    client = session.get(Client, body.client_id)
    if client is None:
        raise HTTPException(422, f"client {body.client_id} not found")
    org = data.org_for_write(session, key, client.organisation_id)
    _check_refs(session, org.id, body.client_id, body.caregiver_id, body.service_id)
    if body.planned_end <= body.planned_start:
        raise HTTPException(422, "planned_end must be after planned_start")
    visit = Visit(organisation_id=org.id, **body.model_dump())
    session.add(visit)
    session.flush()
    webhooks.visit_created(session, visit)
    data.audit(session, key, "create", f"visit:{visit.id}", body.model_dump(mode="json"))
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
    if locked_visit(session, visit, record_of(session, visit.id)):
        raise HTTPException(409, f"visit {visit.id} is validated: reopen it to change it")
    changes = body.model_dump(exclude_unset=True)
    _check_refs(session, visit.organisation_id, changes.get("client_id"),
                changes.get("caregiver_id"), changes.get("service_id"))
    start = changes.get("planned_start", visit.planned_start)
    end = changes.get("planned_end", visit.planned_end)
    if end <= start:
        raise HTTPException(422, "planned_end must be after planned_start")
    changed = {k: v for k, v in changes.items() if getattr(visit, k) != v}
    for k, v in changes.items():
        setattr(visit, k, v)
    webhooks.visit_changed(session, visit, changed)
    data.audit(session, key, "update", f"visit:{visit.id}", body.model_dump(
        mode="json", exclude_unset=True))
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
        for v in result.visits:
            visit = Visit(organisation_id=org.id, client_id=v["client_id"],
                          caregiver_id=v["caregiver_id"], service_id=v["service_id"],
                          planned_start=v["start"], planned_end=v["end"])
            session.add(visit)
            created.append((v, visit))
        session.flush()
        webhooks.visit_created(session, [visit for _, visit in created])
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
