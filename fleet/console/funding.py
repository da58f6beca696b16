"""Funders and funding plans in the console: /funders (list, create, edit) and /funders/plans
(every plan, or one client's: list, create, edit, delete).

Managers and admins only. The data functions are fleet.funding (the same rules and audit
entries as the API); a refusal shows the form again with its message and nothing is kept, and
each rendered form does its write once (fleet.console.forms).
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import funding
from fleet.console import forms
from fleet.console.auth import Viewer
from fleet.console.planning import _org, _scoped  # the same lookups as the planning pages
from fleet.console.web import PlannerDep, PlannerPostDep, SessionDep, page, redirect
from fleet.i18n import N_
from fleet.models import Client, Funder, FundingPlan, Organisation, Service
from fleet.types import plain_int

router = APIRouter(include_in_schema=False)
KIND_LABELS = {"APA": "APA (département)", "PCH": "PCH (département)",
               "AM": N_("AM")}


def _values(request_form) -> dict:
    return {k: str(v) for k, v in request_form.items()}


def _note(values: dict) -> dict:
    return {"form_id": values.get("form_id", "")}


def _earlier(session: Session, viewer: Viewer, form_id: str, prefix: str) -> str | None:
    target = forms.earlier_result(session, viewer.who, form_id)
    return target if target and target.startswith(prefix) else None


# -- funders -------------------------------------------------------------------------------------
@router.get("/funders")
def funder_list(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    found = list(session.scalars(funding.funders(session, org.id)))
    plans: dict[int, int] = {}
    for fid in session.scalars(select(FundingPlan.funder_id).where(
            FundingPlan.organisation_id == org.id)):
        plans[fid] = plans.get(fid, 0) + 1
    return page(request, "funders.html", viewer, funders=found, plans=plans,
                kinds=KIND_LABELS, org=org)


def _funder_form(request: Request, viewer: Viewer, values: dict, funder: Funder | None = None,
                 error: str | None = None, status_code: int = 200) -> Response:
    return page(request, "funder_form.html", viewer, status_code, values=values, funder=funder,
                error=error, kinds=KIND_LABELS,
                form_id=values.get("form_id") or forms.new_form_id())


def _funder_fields(values: dict) -> dict:
    return {"kind": values.get("kind", ""), "name": values.get("name", ""),
            "identifier": values.get("identifier", ""), "active": values.get("active") == "on"}


@router.get("/funders/new")
def new_funder(request: Request, viewer: PlannerDep) -> Response:
    return _funder_form(request, viewer, {"kind": "APA", "active": "on"})


@router.post("/funders")
async def create_funder(request: Request, session: SessionDep,
                        viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    values = _values(await request.form())
    form_id = values.get("form_id", "")
    try:
        with forms.once(form_id):
            if _earlier(session, viewer, form_id, "funder:"):
                return redirect("/funders", "already")
            funding.create_funder(session, viewer.who, org.id, _funder_fields(values),
                                  role=viewer.role, note=_note(values))
            session.commit()
    except funding.FundingError as e:
        session.rollback()
        return _funder_form(request, viewer, values, error=e.message,
                            status_code=e.status)
    except ValueError:
        return _funder_form(request, viewer, values, error=N_("Reload the form"), status_code=422)
    return redirect("/funders", "created")


@router.get("/funders/plans")
def plan_list(request: Request, session: SessionDep, viewer: PlannerDep,
              client: str | None = None, funder: str | None = None) -> Response:
    org = _org(session, viewer)
    client_id, funder_id = plain_int(client), plain_int(funder)
    rows = session.execute(
        funding.plans(session, org.id, client_id, funder_id)
        .add_columns(Client.name, Funder.name, Funder.kind, Service.name)
        .join(Client, Client.id == FundingPlan.client_id)
        .join(Funder, Funder.id == FundingPlan.funder_id)
        .outerjoin(Service, Service.id == FundingPlan.service_id)).all()
    return page(request, "funding_plans.html", viewer, rows=rows, client=client_id,
                funder=funder_id, clients=_choices(session, org, Client),
                funders=_choices(session, org, Funder))


@router.get("/funders/{funder_id:int}")
def edit_funder(funder_id: int, request: Request, session: SessionDep,
                viewer: PlannerDep) -> Response:
    funder = _scoped(session, Funder, funder_id, _org(session, viewer))
    return _funder_form(request, viewer, {"kind": funder.kind, "name": funder.name,
                                          "identifier": funder.identifier,
                                          "active": "on" if funder.active else ""}, funder)


@router.post("/funders/{funder_id:int}")
async def update_funder(funder_id: int, request: Request, session: SessionDep,
                        viewer: PlannerPostDep) -> Response:
    funder = _scoped(session, Funder, funder_id, _org(session, viewer))
    values = _values(await request.form())
    try:
        funding.update_funder(session, viewer.who, funder, _funder_fields(values),
                              role=viewer.role, note=_note(values))
        session.commit()
    except funding.FundingError as e:
        session.rollback()
        return _funder_form(request, viewer, values, funder, error=e.message,
                            status_code=e.status)
    return redirect("/funders", "saved")


# -- funding plans -------------------------------------------------------------------------------
def _choices(session: Session, org: Organisation, model) -> list[tuple]:
    cols = (model.id, model.name) + ((model.kind,) if model is Funder else ())
    return [tuple(r) for r in session.execute(
        select(*cols).where(model.organisation_id == org.id).order_by(model.name, model.id))]


def _plan_form(request: Request, session: Session, viewer: Viewer, org: Organisation,
               values: dict, plan: FundingPlan | None = None, error: str | None = None,
               status_code: int = 200) -> Response:
    return page(request, "funding_plan_form.html", viewer, status_code, values=values,
                plan=plan, error=error, clients=_choices(session, org, Client),
                funders=_choices(session, org, Funder),
                services=_choices(session, org, Service),
                form_id=values.get("form_id") or forms.new_form_id())


def _plan_fields(values: dict) -> dict:
    return {"client_id": plain_int(values.get("client_id")),
            "funder_id": plain_int(values.get("funder_id")),
            "service_id": plain_int(values.get("service_id")),
            "reference": values.get("reference", ""),
            "beneficiary_ref": values.get("beneficiary_ref", ""),
            "minutes_per_month": values.get("minutes_per_month", "").strip(),
            "valid_from": values.get("valid_from", ""), "valid_to": values.get("valid_to", "")}


@router.get("/funders/plans/new")
def new_plan(request: Request, session: SessionDep, viewer: PlannerDep,
             client: str | None = None) -> Response:
    org = _org(session, viewer)
    return _plan_form(request, session, viewer, org, {"client_id": client or ""})


@router.post("/funders/plans")
async def create_plan(request: Request, session: SessionDep,
                      viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    values = _values(await request.form())
    form_id = values.get("form_id", "")
    try:
        with forms.once(form_id):
            if _earlier(session, viewer, form_id, "funding_plan:"):
                return redirect(f"/funders/plans?client={values.get('client_id', '')}",
                                "already")
            plan = funding.create_plan(session, viewer.who, org.id, _plan_fields(values),
                                       role=viewer.role, note=_note(values))
            session.commit()
    except funding.FundingError as e:
        session.rollback()
        return _plan_form(request, session, viewer, org, values, error=e.message,
                          status_code=e.status)
    except ValueError:
        return _plan_form(request, session, viewer, org, values, error=N_("Reload the form"),
                          status_code=422)
    return redirect(f"/funders/plans?client={plan.client_id}", "created")


@router.get("/funders/plans/{plan_id:int}")
def edit_plan(plan_id: int, request: Request, session: SessionDep,
              viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    plan = _scoped(session, FundingPlan, plan_id, org)
    return _plan_form(request, session, viewer, org, {
        "client_id": str(plan.client_id), "funder_id": str(plan.funder_id),
        "service_id": str(plan.service_id or ""), "reference": plan.reference,
        "beneficiary_ref": plan.beneficiary_ref,
        "minutes_per_month": str(plan.minutes_per_month or ""),
        "valid_from": plan.valid_from.isoformat(),
        "valid_to": plan.valid_to.isoformat() if plan.valid_to else ""}, plan)


@router.post("/funders/plans/{plan_id:int}")
async def update_plan(plan_id: int, request: Request, session: SessionDep,
                      viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    plan = _scoped(session, FundingPlan, plan_id, org)
    values = _values(await request.form())
    client_id = plan.client_id
    try:
        if values.get("delete") == "1":
            funding.delete_plan(session, viewer.who, plan, role=viewer.role)
            session.commit()
            return redirect(f"/funders/plans?client={client_id}", "saved")
        funding.update_plan(session, viewer.who, plan, _plan_fields(values),
                            role=viewer.role, note=_note(values))
        session.commit()
    except funding.FundingError as e:
        session.rollback()
        return _plan_form(request, session, viewer, org, values, plan, error=e.message,
                          status_code=e.status)
    return redirect(f"/funders/plans?client={plan.client_id}", "saved")
