"""The client record (access code, key box, care notes, family contacts, the agency's own
fields) and the agency's field definitions; rules in fleet.client_record."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from fleet import client_record
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, SessionDep
from fleet.client_record import RecordError
from fleet.models import Client, ClientField

router = APIRouter()


class Contact(BaseModel):
    name: str = Field(max_length=100)
    relation: str = Field("", max_length=60)
    phone: str = Field(max_length=32)


class RecordIn(BaseModel):
    """Only what is given changes; `custom` maps field keys to values (null clears one)."""
    access_code: str | None = Field(None, max_length=64)
    key_box: str | None = Field(None, max_length=200)
    care_notes: str | None = Field(None, max_length=client_record.MAX_NOTES)
    family_contacts: list[Contact] | None = Field(None, max_length=client_record.MAX_CONTACTS)
    custom: dict[str, Any] | None = None


class RecordOut(BaseModel):
    client_id: int
    access_code: str
    key_box: str
    care_notes: str
    family_contacts: list[Contact]
    custom: dict[str, Any]


class FieldIn(BaseModel):
    label: str = Field(min_length=1, max_length=100)
    kind: Literal["text", "number", "date", "choice"]
    visible_to: Literal["caregivers", "office"] = "office"
    choices: list[str] = Field([], max_length=client_record.MAX_CHOICES)
    organisation_id: int | None = None


class FieldPatch(BaseModel):
    label: str | None = Field(None, min_length=1, max_length=100)
    visible_to: Literal["caregivers", "office"] | None = None
    choices: list[str] | None = Field(None, max_length=client_record.MAX_CHOICES)
    active: bool | None = None


class FieldOut(BaseModel):
    model_config = {"from_attributes": True}
    id: int
    organisation_id: int
    key: str
    label: str
    kind: str
    visible_to: str
    choices: list[str]
    position: int
    active: bool


def _out(c: Client) -> RecordOut:
    return RecordOut(client_id=c.id, access_code=c.access_code, key_box=c.key_box,
                     care_notes=c.care_notes, family_contacts=c.family_contacts or [],
                     custom=c.custom or {})


def _refused(e: RecordError) -> HTTPException:
    return HTTPException(422, str(e))


@router.get("/clients/{client_id}/record", response_model=RecordOut, dependencies=[PLANNERS],
            tags=["clients"])
def get_record(client_id: int, session: SessionDep, key: KeyDep):
    return _out(data.get_scoped(session, key, Client, client_id))


@router.put("/clients/{client_id}/record", response_model=RecordOut, dependencies=[PLANNERS],
            tags=["clients"])
def put_record(client_id: int, body: RecordIn, session: SessionDep, key: KeyDep):
    """All given values are checked first; one refused (a custom value of the wrong type, an
    unknown field, a phone that is not a number) changes nothing: 422 naming it."""
    client = data.get_scoped(session, key, Client, client_id)
    values = body.model_dump(exclude_none=True)
    if body.custom is not None:
        values["custom"] = body.custom  # keeps the nulls that clear a value
    try:
        client_record.update(session, client, values, who=data.who(key), role=key.role)
    except RecordError as e:
        session.rollback()
        raise _refused(e) from None
    session.commit()
    return _out(client)


@router.get("/client-fields", response_model=list[FieldOut], dependencies=[PLANNERS],
            tags=["clients"])
def list_fields(session: SessionDep, key: KeyDep, organisation_id: int | None = None):
    org = data.org_for_write(session, key, organisation_id)
    return client_record.fields(session, org.id, active_only=False)


@router.post("/client-fields", status_code=201, response_model=FieldOut,
             dependencies=[PLANNERS], tags=["clients"])
def create_field(body: FieldIn, session: SessionDep, key: KeyDep):
    org = data.org_for_write(session, key, body.organisation_id)
    try:
        field = client_record.define(session, org.id, body.label, body.kind,
                                     visible_to=body.visible_to, choices=body.choices,
                                     who=data.who(key), role=key.role)
    except RecordError as e:
        session.rollback()
        raise _refused(e) from None
    session.commit()
    return field


@router.patch("/client-fields/{field_id}", response_model=FieldOut, dependencies=[PLANNERS],
              tags=["clients"])
def patch_field(field_id: int, body: FieldPatch, session: SessionDep, key: KeyDep):
    field = data.get_scoped(session, key, ClientField, field_id)
    try:
        client_record.change(session, field, who=data.who(key), role=key.role,
                             **body.model_dump(exclude_none=True))
    except RecordError as e:
        session.rollback()
        raise _refused(e) from None
    session.commit()
    return field
