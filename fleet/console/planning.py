"""Planning pages: clients, caregivers, services and visits (list, create, edit).

Managers and admins only. Every write checks the CSRF token, is recorded in the audit log as
the signed-in person, and is done once per rendered form (fleet.console.forms).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet import absences, audit, contacts, directory, presence, visits
from fleet.directory import PlanningError
from fleet.console import forms
from fleet.console.auth import Viewer
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.i18n import N_
from fleet.models import Caregiver, Client, Organisation, Service, ServiceTask, Visit
from fleet.types import plain_int

router = APIRouter(include_in_schema=False)


class FormProblem(ValueError):
    """A field the person must fix; the form is shown again with their values."""


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"       # text | textarea | checkbox | date | coord | phone
    required: bool = False


@dataclass(frozen=True)
class Kind:
    """A directory list: the model, its URL part and its form fields."""

    model: type
    path: str
    title: str
    fields: tuple[Field, ...]


KINDS = {
    "clients": Kind(Client, "clients", N_("Clients"), (
        Field("name", N_("Name"), required=True), Field("address", N_("Address")),
        Field("postcode", N_("Postcode")), Field("city", N_("City")),
        Field("birth_date", N_("Birth date"), "date"),
        Field("lat", N_("Home latitude"), "coord"),
        Field("lon", N_("Home longitude"), "coord"),
        Field("active", N_("Active"), "checkbox"))),
    "caregivers": Kind(Caregiver, "caregivers", N_("Caregivers"), (
        Field("name", N_("Name"), required=True),
        Field("phone", N_("Private phone")),
        Field("work_phone", N_("Work phone, in the phones' directory"), "phone"),
        Field("active", N_("Active"), "checkbox"))),
    "services": Kind(Service, "services", N_("Services"), (
        Field("name", N_("Name"), required=True), Field("code", "Code", required=True),
        Field("tasks", N_("Tasks, one per line"), "textarea"))),
}


def _org(session: Session, viewer: Viewer) -> Organisation:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    return org


def _scoped(session: Session, model, obj_id: int, org: Organisation):
    obj = session.get(model, obj_id)
    if obj is None or obj.organisation_id != org.id:
        raise Missing(N_("Not found"))
    return obj


def _audit(session: Session, viewer: Viewer, action: str, target: str, form_id: str,
           detail: dict) -> None:
    audit.record(session, viewer.who, action, target, role=viewer.role,
                 detail={**detail, "form_id": form_id})


def _done_before(session: Session, viewer: Viewer, form_id: str) -> Response | None:
    """The redirect to what an earlier POST of this same form made, if there was one."""
    target = forms.earlier_result(session, viewer.who, form_id)
    if target is None:
        return None
    kind, _, ident = target.partition(":")
    return redirect(f"/planning/{kind}s/{ident}", "already")


# -- visits ------------------------------------------------------------------------------------
def _names(session: Session, model, org: Organisation, active_only: bool = True) -> list:
    q = select(model).where(model.organisation_id == org.id)
    if active_only and hasattr(model, "active"):
        q = q.where(model.active)
    return list(session.scalars(q.order_by(model.name)))


def _visit_form(request: Request, session: Session, viewer: Viewer, org: Organisation,
                values: dict, visit: Visit | None = None, error: str | None = None,
                status_code: int = 200) -> Response:
    return page(request, "visit_form.html", viewer, status_code, org=org, visit=visit,
                values=values, error=error, form_id=values.get("form_id") or forms.new_form_id(),
                clients=_names(session, Client, org), caregivers=_names(session, Caregiver, org),
                services=_names(session, Service, org))


def _local(day: str, hhmm: str, tz: ZoneInfo, what: str) -> datetime:
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise FormProblem(f"{day!r} is not a date (YYYY-MM-DD) · n'est pas une date") from None
    try:
        t = time.fromisoformat(hhmm)
    except ValueError:
        raise FormProblem(f"{what}: {hhmm!r} is not a time (HH:MM) · n'est pas une heure") \
            from None
    return visits.local_instant(d, t, tz)


def _read_visit(session: Session, org: Organisation, v: dict) -> dict:
    """The form's fields as the planning layer's (fleet.visits checks them)."""
    tz = ZoneInfo(org.timezone)
    ids = {}
    for name, label in (("client_id", N_("client")),
                        ("caregiver_id", N_("caregiver")),
                        ("service_id", N_("service"))):
        raw = (v.get(name) or "").strip()
        if not raw and name == "service_id":
            ids[name] = None
            continue
        ids[name] = plain_int(raw)
        if ids[name] is None:
            raise FormProblem(f"choose a {label} · choisissez")
    start = _local(v.get("day", ""), v.get("start", ""), tz, N_("start"))
    end = _local(v.get("day", ""), v.get("end", ""), tz, N_("end"))
    return {**ids, "planned_start": start, "planned_end": end}


@router.get("/planning")
def visits_of_day(request: Request, session: SessionDep, viewer: PlannerDep,
                  day: Annotated[date | None, Query()] = None) -> Response:
    org = _org(session, viewer)
    tz = ZoneInfo(org.timezone)
    day = day or datetime.now(tz).date()
    lo = datetime.combine(day, time(0), tz)
    visits = session.execute(
        select(Visit, Client.name, Caregiver.name)
        .join(Client, Client.id == Visit.client_id)
        .join(Caregiver, Caregiver.id == Visit.caregiver_id)
        .where(Visit.organisation_id == org.id, Visit.planned_start >= lo,
               Visit.planned_start < lo + timedelta(days=1))
        .order_by(Visit.planned_start, Visit.id)).all()
    to_replace = absences.to_replace_ids(session, [v.id for v, _, _ in visits])
    return page(request, "planning.html", viewer, org=org, day=day, visits=visits,
                to_replace=to_replace,
                prev=day - timedelta(days=1), next=day + timedelta(days=1),
                fmt=lambda t: t.astimezone(tz).strftime("%H:%M"))


@router.get("/planning/visits/new")
def new_visit(request: Request, session: SessionDep, viewer: PlannerDep,
              day: Annotated[date | None, Query()] = None) -> Response:
    org = _org(session, viewer)
    day = day or datetime.now(ZoneInfo(org.timezone)).date()
    return _visit_form(request, session, viewer, org, {"day": day.isoformat(),
                                                       "start": "09:00", "end": "10:00"})


@router.post("/planning/visits")
async def create_visit(request: Request, session: SessionDep,
                       viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    values = {k: str(v) for k, v in (await request.form()).items()}
    form_id = values.get("form_id", "")
    try:
        with forms.once(form_id):
            again = _done_before(session, viewer, form_id)
            if again:
                return again
            fields = _read_visit(session, org, values)
            visits.create(session, org, **fields, who=viewer.who, role=viewer.role,
                          note={"form_id": form_id})
            session.commit()
    except PlanningError as e:
        session.rollback()
        return _visit_form(request, session, viewer, org, values, error=e.message,
                           status_code=e.status)
    except (FormProblem, ValueError) as e:
        session.rollback()
        return _visit_form(request, session, viewer, org, values, error=str(e),
                           status_code=422)
    return redirect(f"/planning?day={values['day']}", "created")


@router.get("/planning/visits/{visit_id}")
def edit_visit(visit_id: int, request: Request, session: SessionDep,
               viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    visit = _scoped(session, Visit, visit_id, org)
    tz = ZoneInfo(org.timezone)
    start, end = visit.planned_start.astimezone(tz), visit.planned_end.astimezone(tz)
    return _visit_form(request, session, viewer, org, {
        "client_id": str(visit.client_id), "caregiver_id": str(visit.caregiver_id),
        "service_id": str(visit.service_id or ""), "day": start.date().isoformat(),
        "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"),
        "status": visit.status}, visit=visit)


@router.post("/planning/visits/{visit_id}")
async def update_visit(visit_id: int, request: Request, session: SessionDep,
                       viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    visit = _scoped(session, Visit, visit_id, org)
    values = {k: str(v) for k, v in (await request.form()).items()}
    try:
        fields = _read_visit(session, org, values)
        if values.get("status") == "cancelled":
            fields["status"] = "cancelled"
        elif visit.status == "cancelled" and values.get("status") == "planned":
            fields["status"] = "planned"
        visits.update(session, visit, fields, who=viewer.who, role=viewer.role,
                      note={"form_id": values.get("form_id", "")})
        session.commit()
    except PlanningError as e:
        session.rollback()
        return _visit_form(request, session, viewer, org, values, visit=visit, error=e.message,
                           status_code=e.status)
    except FormProblem as e:
        session.rollback()
        return _visit_form(request, session, viewer, org, values, visit=visit, error=str(e),
                           status_code=422)
    return redirect(f"/planning?day={values['day']}", "saved")


# -- clients, caregivers, services -------------------------------------------------------------
def _kind(path: str) -> Kind:
    if path not in KINDS:
        raise Missing(N_("Not found"))
    return KINDS[path]


def _values_of(kind: Kind, obj) -> dict:
    out = {}
    for f in kind.fields:
        if f.name == "tasks":
            out["tasks"] = "\n".join(t.label for t in obj.tasks)
        elif f.kind == "date":
            value = getattr(obj, f.name)
            out[f.name] = value.isoformat() if value else ""
        else:
            out[f.name] = getattr(obj, f.name)
    return out


def _thing_form(request, viewer, kind: Kind, values: dict, obj=None, error=None,
                status_code=200) -> Response:
    return page(request, "thing_form.html", viewer, status_code, kind=kind, obj=obj,
                values=values, error=error,
                form_id=values.get("form_id") or forms.new_form_id())


def _apply(session: Session, kind: Kind, obj, values: dict) -> dict:
    changes: dict = {}
    for f in kind.fields:
        if f.kind == "checkbox":
            new = values.get(f.name) == "on"
        elif f.kind == "date":
            raw = values.get(f.name, "").strip()
            try:
                new = date.fromisoformat(raw) if raw else None
            except ValueError:
                raise FormProblem(f"{f.label}: {raw!r} is not a date (YYYY-MM-DD) · n'est "
                                  "pas une date") from None
        elif f.kind == "coord":
            try:
                new = presence.parse_coord(values.get(f.name), f.name)
            except ValueError as e:
                raise FormProblem(f"{f.label}: {e}") from None
        elif f.kind == "phone":
            raw = values.get(f.name, "").strip()
            try:
                new = contacts.phone_number(raw, f.label) if raw else ""
            except contacts.ContactProblem as e:
                raise FormProblem(str(e)) from None
        elif f.name == "tasks":
            labels = [t.strip()[:200] for t in values.get("tasks", "").splitlines() if t.strip()]
            if labels != [t.label for t in obj.tasks]:
                obj.tasks.clear()
                session.flush()
                obj.tasks.extend(ServiceTask(position=i, label=t)
                                 for i, t in enumerate(labels, 1))
                changes["tasks"] = labels
            continue
        else:
            new = values.get(f.name, "").strip()
            if f.required:
                new = directory.check_name(new, f.label)
        if getattr(obj, f.name, None) != new:
            setattr(obj, f.name, new)
            changes[f.name] = new.isoformat() if isinstance(new, date) else new
    if kind.model is Client:
        directory.check_point(obj.lat, obj.lon)
    if kind.model is Service:
        obj.code = directory.check_service_code(session, obj.organisation_id, obj.code,
                                                but=obj.id)
    return changes


@router.get("/planning/{path}")
def list_things(path: str, request: Request, session: SessionDep,
                viewer: PlannerDep) -> Response:
    kind = _kind(path)
    org = _org(session, viewer)
    return page(request, "things.html", viewer, kind=kind,
                things=_names(session, kind.model, org, active_only=False))


@router.get("/planning/{path}/new")
def new_thing(path: str, request: Request, viewer: PlannerDep) -> Response:
    return _thing_form(request, viewer, _kind(path), {"active": True})


@router.post("/planning/{path}")
async def create_thing(path: str, request: Request, session: SessionDep,
                       viewer: PlannerPostDep) -> Response:
    kind = _kind(path)
    org = _org(session, viewer)
    values = {k: str(v) for k, v in (await request.form()).items()}
    form_id = values.get("form_id", "")
    what = kind.path[:-1]
    try:
        with forms.once(form_id):
            again = _done_before(session, viewer, form_id)
            if again:
                return again
            obj = kind.model(organisation_id=org.id)
            if kind.model is Service:
                obj.tasks = []
            session.add(obj)
            changes = _apply(session, kind, obj, values)
            session.flush()
            _audit(session, viewer, "create", f"{what}:{obj.id}", form_id, changes)
            session.commit()
    except IntegrityError:
        session.rollback()
        return _thing_form(request, viewer, kind, values, error=N_("This code is already used"),
                           status_code=409)
    except PlanningError as e:
        session.rollback()
        return _thing_form(request, viewer, kind, values, error=e.message, status_code=e.status)
    except (FormProblem, ValueError) as e:
        session.rollback()
        return _thing_form(request, viewer, kind, values, error=str(e), status_code=422)
    return redirect(f"/planning/{kind.path}", "created")


@router.get("/planning/{path}/{obj_id}")
def edit_thing(path: str, obj_id: int, request: Request, session: SessionDep,
               viewer: PlannerDep) -> Response:
    kind = _kind(path)
    obj = _scoped(session, kind.model, obj_id, _org(session, viewer))
    return _thing_form(request, viewer, kind, _values_of(kind, obj), obj=obj)


@router.post("/planning/{path}/{obj_id}")
async def update_thing(path: str, obj_id: int, request: Request, session: SessionDep,
                       viewer: PlannerPostDep) -> Response:
    kind = _kind(path)
    obj = _scoped(session, kind.model, obj_id, _org(session, viewer))
    values = {k: str(v) for k, v in (await request.form()).items()}
    try:
        changes = _apply(session, kind, obj, values)
        if changes:
            _audit(session, viewer, "update", f"{kind.path[:-1]}:{obj.id}",
                   values.get("form_id", ""), changes)
        session.commit()
    except IntegrityError:
        session.rollback()
        return _thing_form(request, viewer, kind, values, obj=obj,
                           error=N_("This code is already used"),
                           status_code=409)
    except PlanningError as e:
        session.rollback()
        return _thing_form(request, viewer, kind, values, obj=obj, error=e.message,
                           status_code=e.status)
    except FormProblem as e:
        session.rollback()
        return _thing_form(request, viewer, kind, values, obj=obj, error=str(e),
                           status_code=422)
    return redirect(f"/planning/{kind.path}", "saved")
