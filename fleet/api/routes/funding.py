"""Funders and funding plans (fleet.funding): list, create, read, update; plans also deleted."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from fleet import funding
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, PageDep, SessionDep
from fleet.api.schemas import (FunderIn, FunderOut, FunderPatch, FundingPlanIn, FundingPlanOut,
                               FundingPlanPatch)
from fleet.models import Client, Funder, FundingPlan

router = APIRouter(tags=["funding"])


def _refused(session, e: funding.FundingError) -> HTTPException:
    session.rollback()
    return HTTPException(e.status, e.message)


@router.post("/funders", status_code=201, response_model=FunderOut, dependencies=[PLANNERS])
def create_funder(body: FunderIn, session: SessionDep, key: KeyDep):
    org = data.org_for_write(session, key, body.organisation_id)
    try:
        funder = funding.create_funder(session, data.who(key), org.id,
                                       body.model_dump(exclude={"organisation_id"}),
                                       role=key.role)
    except funding.FundingError as e:
        raise _refused(session, e) from None
    session.commit()
    return funder


@router.get("/funders")
def list_funders(session: SessionDep, key: KeyDep, page: PageDep,
                 organisation_id: int | None = None, active: bool | None = None) -> dict:
    stmt = data.scope(funding.funders(session, organisation_id, active), key,
                      Funder.organisation_id)
    return data.page(session, stmt, page.limit, page.offset, FunderOut.model_validate)


@router.get("/funders/{funder_id}", response_model=FunderOut)
def get_funder(funder_id: int, session: SessionDep, key: KeyDep):
    return data.get_scoped(session, key, Funder, funder_id)


@router.patch("/funders/{funder_id}", response_model=FunderOut, dependencies=[PLANNERS])
def update_funder(funder_id: int, body: FunderPatch, session: SessionDep, key: KeyDep):
    funder = data.get_scoped(session, key, Funder, funder_id)
    try:
        funding.update_funder(session, data.who(key), funder,
                              body.model_dump(exclude_unset=True), role=key.role)
    except funding.FundingError as e:
        raise _refused(session, e) from None
    session.commit()
    return funder


@router.post("/funding-plans", status_code=201, response_model=FundingPlanOut,
             dependencies=[PLANNERS])
def create_plan(body: FundingPlanIn, session: SessionDep, key: KeyDep):
    # the plan belongs to its client's organisation, which the key must be allowed to write
    client = session.get(Client, body.client_id)
    if client is None:
        raise HTTPException(422, f"client {body.client_id} not found")
    org = data.org_for_write(session, key, client.organisation_id)
    try:
        plan = funding.create_plan(session, data.who(key), org.id, body.model_dump(),
                                   role=key.role)
    except funding.FundingError as e:
        raise _refused(session, e) from None
    session.commit()
    return plan


@router.get("/funding-plans")
def list_plans(session: SessionDep, key: KeyDep, page: PageDep,
               organisation_id: int | None = None, client_id: int | None = None,
               funder_id: int | None = None) -> dict:
    stmt = data.scope(funding.plans(session, organisation_id, client_id, funder_id), key,
                      FundingPlan.organisation_id)
    return data.page(session, stmt, page.limit, page.offset, FundingPlanOut.model_validate)


@router.get("/funding-plans/{plan_id}", response_model=FundingPlanOut)
def get_plan(plan_id: int, session: SessionDep, key: KeyDep):
    return data.get_scoped(session, key, FundingPlan, plan_id)


@router.patch("/funding-plans/{plan_id}", response_model=FundingPlanOut,
              dependencies=[PLANNERS])
def update_plan(plan_id: int, body: FundingPlanPatch, session: SessionDep, key: KeyDep):
    plan = data.get_scoped(session, key, FundingPlan, plan_id)
    try:
        funding.update_plan(session, data.who(key), plan, body.model_dump(exclude_unset=True),
                            role=key.role)
    except funding.FundingError as e:
        raise _refused(session, e) from None
    session.commit()
    return plan


@router.delete("/funding-plans/{plan_id}", status_code=204, dependencies=[PLANNERS])
def delete_plan(plan_id: int, session: SessionDep, key: KeyDep) -> Response:
    plan = data.get_scoped(session, key, FundingPlan, plan_id)
    funding.delete_plan(session, data.who(key), plan, role=key.role)
    session.commit()
    return Response(status_code=204)
