"""Organisations, clients, caregivers and services."""

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fleet.api import data
from fleet.api.deps import ADMIN, PLANNERS, KeyDep, PageDep, SessionDep
from fleet.api.schemas import (CaregiverIn, CaregiverOut, CaregiverPatch, ClientIn, ClientOut,
                               ClientPatch, OrganisationIn, OrganisationOut, OrganisationPatch,
                               ServiceIn, ServiceOut, ServicePatch)
from fleet import directory
from fleet.client_points import parse_points
from fleet.models import Caregiver, Client, Organisation, Service, ServiceTask
from fleet.visit_import import ImportFileError

router = APIRouter()


def _check_tz(name: str | None) -> None:
    with data.refused():
        directory.check_timezone(name)


def _check_person(model, obj) -> None:
    """The directory's rules on a client or caregiver as it would be saved."""
    with data.refused():
        obj.name = directory.check_name(obj.name)
        if model is Client:
            directory.check_point(obj.lat, obj.lon)


def _commit(session, what: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(409, f"{what} already exists") from None


@router.post("/organisations", status_code=201, response_model=OrganisationOut,
             dependencies=[ADMIN], tags=["directory"])
def create_organisation(body: OrganisationIn, session: SessionDep, key: KeyDep):
    _check_tz(body.timezone)
    org = Organisation(**body.model_dump())
    session.add(org)
    _commit(session, f"organisation {body.name!r}")
    data.audit(session, key, "create", f"organisation:{org.id}", body.model_dump())
    session.commit()
    return org


@router.get("/organisations", tags=["directory"])
def list_organisations(session: SessionDep, key: KeyDep, page: PageDep) -> dict:
    stmt = data.scope(select(Organisation).order_by(Organisation.id), key, Organisation.id)
    return data.page(session, stmt, page.limit, page.offset, OrganisationOut.model_validate)


@router.get("/organisations/{org_id}", response_model=OrganisationOut, tags=["directory"])
def get_organisation(org_id: int, session: SessionDep, key: KeyDep):
    return data.get_scoped(session, key, Organisation, org_id)


@router.patch("/organisations/{org_id}", response_model=OrganisationOut,
              dependencies=[PLANNERS], tags=["directory"])
def update_organisation(org_id: int, body: OrganisationPatch, session: SessionDep,
                        key: KeyDep):
    org = data.get_scoped(session, key, Organisation, org_id)
    changes = body.model_dump(exclude_unset=True)
    nulls = sorted(k for k, v in changes.items() if v is None)
    if nulls:
        raise HTTPException(422, f"{', '.join(nulls)} cannot be null")
    _check_tz(changes.get("timezone"))
    for k, v in changes.items():
        setattr(org, k, v)
    data.audit(session, key, "update", f"organisation:{org.id}", changes)
    _commit(session, "an organisation with this name")
    return org


def _crud(model, In, Out, Patch, path: str, what: str) -> None:
    """create / list / get / patch for an organisation's people (clients, caregivers)."""

    @router.post(f"/{path}", status_code=201, response_model=Out, dependencies=[PLANNERS],
                 tags=["directory"], name=f"create_{what}")
    def create(body: In, session: SessionDep, key: KeyDep):
        org = data.org_for_write(session, key, body.organisation_id)
        obj = model(**body.model_dump(exclude={"organisation_id"}), organisation_id=org.id)
        _check_person(model, obj)
        session.add(obj)
        session.flush()
        data.audit(session, key, "create", f"{what}:{obj.id}", body.model_dump(mode="json"))
        session.commit()
        return obj

    @router.get(f"/{path}", tags=["directory"], name=f"list_{what}s")
    def list_(session: SessionDep, key: KeyDep, page: PageDep, organisation_id: int | None = None,
              active: bool | None = None, q: str | None = None) -> dict:
        stmt = data.scope(select(model).order_by(model.name, model.id), key,
                          model.organisation_id)
        if organisation_id is not None:
            stmt = stmt.where(model.organisation_id == organisation_id)
        if active is not None:
            stmt = stmt.where(model.active == active)
        if q:
            stmt = stmt.where(model.name.ilike(f"%{q}%"))
        return data.page(session, stmt, page.limit, page.offset, Out.model_validate)

    @router.get(f"/{path}/{{obj_id}}", response_model=Out, tags=["directory"],
                name=f"get_{what}")
    def get(obj_id: int, session: SessionDep, key: KeyDep):
        return data.get_scoped(session, key, model, obj_id)

    @router.patch(f"/{path}/{{obj_id}}", response_model=Out, dependencies=[PLANNERS],
                  tags=["directory"], name=f"update_{what}")
    def update(obj_id: int, body: Patch, session: SessionDep, key: KeyDep):
        obj = data.get_scoped(session, key, model, obj_id)
        changes = body.model_dump(exclude_unset=True)
        for k, v in changes.items():
            setattr(obj, k, v)
        _check_person(model, obj)
        data.audit(session, key, "update", f"{what}:{obj.id}",
                   body.model_dump(mode="json", exclude_unset=True))
        session.commit()
        return obj


_crud(Client, ClientIn, ClientOut, ClientPatch, "clients", "client")
_crud(Caregiver, CaregiverIn, CaregiverOut, CaregiverPatch, "caregivers", "caregiver")


@router.post("/services", status_code=201, response_model=ServiceOut, dependencies=[PLANNERS],
             tags=["directory"])
def create_service(body: ServiceIn, session: SessionDep, key: KeyDep):
    org = data.org_for_write(session, key, body.organisation_id)
    with data.refused():
        directory.check_name(body.name)
        directory.check_service_code(session, org.id, body.code)
    svc = Service(organisation_id=org.id, name=body.name.strip(), code=body.code.strip(),
                  tasks=[ServiceTask(position=i, label=t) for i, t in enumerate(body.tasks, 1)])
    session.add(svc)
    _commit(session, f"service code {body.code!r}")
    data.audit(session, key, "create", f"service:{svc.id}", body.model_dump())
    session.commit()
    return svc


@router.get("/services", tags=["directory"])
def list_services(session: SessionDep, key: KeyDep, page: PageDep,
                  organisation_id: int | None = None) -> dict:
    stmt = data.scope(select(Service).order_by(Service.code), key, Service.organisation_id)
    if organisation_id is not None:
        stmt = stmt.where(Service.organisation_id == organisation_id)
    return data.page(session, stmt, page.limit, page.offset, ServiceOut.model_validate)


@router.get("/services/{service_id}", response_model=ServiceOut, tags=["directory"])
def get_service(service_id: int, session: SessionDep, key: KeyDep):
    return data.get_scoped(session, key, Service, service_id)


@router.patch("/services/{service_id}", response_model=ServiceOut, dependencies=[PLANNERS],
              tags=["directory"])
def update_service(service_id: int, body: ServicePatch, session: SessionDep, key: KeyDep):
    svc = data.get_scoped(session, key, Service, service_id)
    changes = body.model_dump(exclude_unset=True)
    with data.refused():
        if "name" in changes:
            svc.name = directory.check_name(changes["name"])
        if "code" in changes:
            svc.code = directory.check_service_code(session, svc.organisation_id,
                                                    changes["code"], but=svc.id)
    if "tasks" in changes:
        svc.tasks.clear()
        session.flush()
        svc.tasks.extend(ServiceTask(position=i, label=t)
                         for i, t in enumerate(changes["tasks"], 1))
    data.audit(session, key, "update", f"service:{svc.id}", changes)
    _commit(session, "a service with this code")
    return svc


@router.post("/clients/points/import", dependencies=[PLANNERS], tags=["clients"])
async def import_points(session: SessionDep, key: KeyDep,
                        file: Annotated[UploadFile, File(description="client,lat,lon CSV")],
                        dry_run: Annotated[bool, Query()] = False,
                        organisation_id: int | None = None) -> dict:
    """Set the clients' home points (fleet.client_points): all rows or none."""
    raw = await data.read_upload(file)
    org = data.org_for_write(session, key, organisation_id)
    try:
        result = parse_points(session, org, raw)
    except ImportFileError as e:
        raise HTTPException(422, e.errors) from None
    write = not dry_run and not result.errors
    if write:
        for client, lat, lon in result.points:
            client.lat, client.lon = lat, lon
        data.audit(session, key, "import_points", f"organisation:{org.id}",
                   {"file": file.filename, "set": len(result.points)})
        session.commit()
    return {"dry_run": dry_run, "encoding": result.encoding, "rows": result.rows,
            "valid": len(result.points), "set": len(result.points) if write else 0,
            "errors": result.errors,
            "points": [{"client_id": c.id, "client": c.name, "lat": lat, "lon": lon}
                       for c, lat, lon in result.points]}
