"""The client record page (/planning/clients/<id>/record: access code, key box, care notes,
family contacts, the agency's own fields) and the fields' definitions (/planning/fields).
Managers and admins; rules and audit in fleet.client_record, shared with the API."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from fleet import client_record
from fleet.client_record import RecordError
from fleet.console.auth import Viewer
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.i18n import N_
from fleet.models import CLIENT_FIELD_KINDS, Client, ClientField, Organisation

router = APIRouter(include_in_schema=False)
KIND_LABELS = {"text": N_("text"), "number": N_("number"), "date": "date",
               "choice": N_("choice")}


def _org(session: Session, viewer: Viewer) -> Organisation:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    return org


def _client(session: Session, viewer: Viewer, client_id: int) -> Client:
    client = session.get(Client, client_id)
    if client is None or client.organisation_id != _org(session, viewer).id:
        raise Missing(N_("Not found"))
    return client


def _contacts_text(contacts: list) -> str:
    return "\n".join(f"{c['name']}; {c.get('relation', '')}; {c['phone']}" for c in contacts)


def _record_page(request: Request, session: Session, viewer: Viewer, client: Client,
                 values: dict | None = None, error: str | None = None,
                 status_code: int = 200) -> Response:
    agency_fields = client_record.fields(session, client.organisation_id)
    if values is None:
        custom = client.custom or {}
        values = {"access_code": client.access_code, "key_box": client.key_box,
                  "care_notes": client.care_notes,
                  "family_contacts": _contacts_text(client.family_contacts or []),
                  **{f"custom_{f.key}": custom.get(f.key, "") for f in agency_fields}}
    resp = page(request, "client_record.html", viewer, status_code, client=client,
                fields=agency_fields, values=values, error=error)
    resp.headers["Cache-Control"] = "no-store"  # access codes
    return resp


@router.get("/planning/clients/{client_id}/record")
def record_page(client_id: int, request: Request, session: SessionDep,
                viewer: PlannerDep) -> Response:
    return _record_page(request, session, viewer, _client(session, viewer, client_id))


@router.post("/planning/clients/{client_id}/record")
async def save_record(client_id: int, request: Request, session: SessionDep,
                      viewer: PlannerPostDep) -> Response:
    client = _client(session, viewer, client_id)
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ("access_code", "key_box", "care_notes",
                                                "family_contacts")}
    agency_fields = client_record.fields(session, client.organisation_id)
    custom = {f.key: str(form.get(f"custom_{f.key}", "")) for f in agency_fields}
    try:
        client_record.update(session, client, {**values, "custom": custom}, who=viewer.who,
                             role=viewer.role)
    except RecordError as e:
        session.rollback()
        shown = {**values, **{f"custom_{k}": v for k, v in custom.items()}}
        return _record_page(request, session, viewer, client, shown, str(e), 422)
    session.commit()
    return redirect(f"/planning/clients/{client.id}/record", "saved")


def _fields_page(request: Request, session: Session, viewer: Viewer, error: str | None = None,
                 values: dict | None = None, status_code: int = 200) -> Response:
    org = _org(session, viewer)
    return page(request, "client_fields.html", viewer, status_code, error=error,
                fields=client_record.fields(session, org.id, active_only=False),
                kinds=CLIENT_FIELD_KINDS, kind_labels=KIND_LABELS,
                values=values or {"kind": "text", "visible_to": "office"})


@router.get("/planning/fields")
def fields_page(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    return _fields_page(request, session, viewer)


@router.post("/planning/fields")
async def add_field(request: Request, session: SessionDep, viewer: PlannerPostDep) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ("label", "kind", "visible_to", "choices")}
    try:
        client_record.define(session, _org(session, viewer).id, values["label"],
                             values["kind"], visible_to=values["visible_to"],
                             choices=values["choices"], who=viewer.who, role=viewer.role)
    except RecordError as e:
        session.rollback()
        return _fields_page(request, session, viewer, str(e), values, 422)
    session.commit()
    return redirect("/planning/fields", "created")


@router.post("/planning/fields/{field_id}")
async def change_field(field_id: int, request: Request, session: SessionDep,
                       viewer: PlannerPostDep) -> Response:
    field = session.get(ClientField, field_id)
    if field is None or field.organisation_id != _org(session, viewer).id:
        raise Missing(N_("Not found"))
    form = await request.form()
    try:
        client_record.change(
            session, field, who=viewer.who, role=viewer.role,
            visible_to=str(form.get("visible_to") or field.visible_to),
            active={"1": True, "0": False}.get(str(form.get("active", ""))),
            choices=str(form["choices"]) if "choices" in form else None)
    except RecordError as e:
        session.rollback()
        return _fields_page(request, session, viewer, str(e), status_code=422)
    session.commit()
    return redirect("/planning/fields", "saved")
