"""Messages, the agency's numbers and call-back requests (fleet.messages, fleet.contacts,
fleet.callbacks). Managers and admins; an agency's key sees and writes its own only: a message
to another agency's caregiver is a 422 that names the caregiver, and nothing is written."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, model_validator

from fleet import callbacks, contacts, messages
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, PageDep, SessionDep
from fleet.models import CallbackRequest, Caregiver, Message
from fleet.types import utcnow

router = APIRouter(dependencies=[PLANNERS])


class MessageIn(BaseModel):
    """To `caregiver_ids` (one or a chosen set: a team, a sector), or to `everyone` active in
    the agency. `mandatory`: the phone shows it first and waits for "J'ai lu"."""

    organisation_id: int | None = None
    subject: str = Field(max_length=messages.SUBJECT_MAX + 100)
    body: str = Field(max_length=messages.BODY_MAX + 1000)
    mandatory: bool = False
    caregiver_ids: list[int] = Field(default_factory=list, max_length=10_000)
    everyone: bool = False

    @model_validator(mode="after")
    def _one_audience(self) -> "MessageIn":
        if self.everyone == bool(self.caregiver_ids):
            raise ValueError("give caregiver_ids or everyone: true (one of them)")
        return self


class Receipt(BaseModel):
    caregiver_id: int
    name: str
    delivered_at: datetime | None
    read_at: datetime | None
    acknowledged_at: datetime | None


class MessageOut(BaseModel):
    id: int
    organisation_id: int
    direction: str
    subject: str
    body: str
    mandatory: bool
    everyone: bool
    sender: str
    created_at: datetime
    caregiver_id: int | None = None  # the author of a message to the office
    caregiver_name: str | None = None
    visit_id: int | None = None
    counts: dict[str, int] | None = None
    receipts: list[Receipt] | None = None


def _out(session, m: Message, counts: dict | None = None, with_receipts: bool = False) -> dict:
    author = session.get(Caregiver, m.caregiver_id) if m.caregiver_id else None
    return MessageOut(
        id=m.id, organisation_id=m.organisation_id, direction=m.direction, subject=m.subject,
        body=m.body, mandatory=m.mandatory, everyone=m.everyone, sender=m.sender,
        created_at=m.created_at, caregiver_id=m.caregiver_id,
        caregiver_name=author.name if author else None, visit_id=m.visit_id,
        counts=counts, receipts=([Receipt(**r) for r in messages.receipts(session, m.id)]
                                 if with_receipts else None)).model_dump()


@router.post("/messages", status_code=201, response_model=MessageOut, tags=["messages"])
def send_message(body: MessageIn, session: SessionDep, key: KeyDep) -> dict:
    """Write to caregivers. 422: empty or over-long subject or text, no recipient, or a
    caregiver who is not an active one of this agency (named)."""
    org = data.org_for_write(session, key, body.organisation_id)
    try:
        m = messages.send_to_caregivers(
            session, org, subject=body.subject, body=body.body, mandatory=body.mandatory,
            caregiver_ids=None if body.everyone else body.caregiver_ids, who=data.who(key),
            role=key.role, user_id=key.user_id)
    except messages.MessageProblem as e:
        session.rollback()
        raise HTTPException(e.status, str(e)) from None
    session.commit()
    return _out(session, m, messages.counts(session, [m.id]).get(m.id), with_receipts=True)


@router.get("/messages", tags=["messages"])
def list_messages(session: SessionDep, key: KeyDep, page: PageDep,
                  direction: Literal["to_caregivers", "to_office"] = "to_caregivers",
                  organisation_id: int | None = None) -> dict:
    """Sent messages with their counts (recipients, delivered, read, acknowledged), or
    (`direction=to_office`) the inbox: what caregivers wrote."""
    org = data.org_for_write(session, key, organisation_id)
    rows = messages.listing(session, org.id, direction, page.limit, page.offset)
    counts = messages.counts(session, [m.id for m in rows])
    return {"items": [_out(session, m, counts.get(m.id)) for m in rows], "limit": page.limit,
            "offset": page.offset}


@router.get("/messages/{message_id}", response_model=MessageOut, tags=["messages"])
def get_message(message_id: int, session: SessionDep, key: KeyDep) -> dict:
    """One message; to caregivers, with who received (on the phone), read and acknowledged
    it, and when."""
    m = data.get_scoped(session, key, Message, message_id)
    return _out(session, m, messages.counts(session, [m.id]).get(m.id),
                with_receipts=m.direction == "to_caregivers")


class Number(BaseModel):
    label: str = Field(max_length=contacts.LABEL_MAX + 100)
    number: str = Field(max_length=64)


class ContactsIn(BaseModel):
    """Each list given replaces the agency's; a list left out is unchanged."""

    emergency: list[Number] | None = Field(None, max_length=50)
    office: list[Number] | None = Field(None, max_length=100)
    directory_colleagues: bool | None = None


class ContactsOut(BaseModel):
    organisation_id: int
    emergency: list[Number]
    office: list[Number]
    directory_colleagues: bool


@router.get("/emergency-numbers", response_model=ContactsOut, tags=["emergency numbers"])
def get_numbers(session: SessionDep, key: KeyDep, organisation_id: int | None = None) -> dict:
    """The agency's emergency numbers (at most 5, on the phones' Téléphone tab), its office
    contacts and whether the phones' directory lists colleagues' work numbers."""
    return contacts.read(session, data.org_for_write(session, key, organisation_id))


@router.put("/emergency-numbers", response_model=ContactsOut, tags=["emergency numbers"])
def put_numbers(body: ContactsIn, session: SessionDep, key: KeyDep,
                organisation_id: int | None = None) -> dict:
    """Replace them; 422 names the entry that is not a phone number, a sixth emergency
    number, an empty label; then nothing changed."""
    org = data.org_for_write(session, key, organisation_id)
    dump = body.model_dump()
    try:
        contacts.replace(session, org, emergency=dump["emergency"], office=dump["office"],
                         directory_colleagues=dump["directory_colleagues"], who=data.who(key),
                         role=key.role)
    except contacts.ContactProblem as e:
        session.rollback()
        raise HTTPException(422, str(e)) from None
    session.commit()
    return contacts.read(session, org)


class CallbackOut(BaseModel):
    id: int
    organisation_id: int
    caregiver_id: int
    caregiver_name: str
    reason: str
    created_at: datetime
    taken_at: datetime | None
    taken_by: str | None
    waiting_s: int | None  # for a waiting request: how long so far


def _callback(session, r: CallbackRequest) -> dict:
    who = session.get(Caregiver, r.caregiver_id)
    return CallbackOut(
        id=r.id, organisation_id=r.organisation_id, caregiver_id=r.caregiver_id,
        caregiver_name=who.name if who else "?", reason=r.reason, created_at=r.created_at,
        taken_at=r.taken_at, taken_by=r.taken_by,
        waiting_s=None if r.taken_at else int((utcnow() - r.created_at).total_seconds())
    ).model_dump()


@router.get("/callbacks", tags=["callbacks"])
def list_callbacks(session: SessionDep, key: KeyDep,
                   state: Literal["waiting", "taken"] = "waiting",
                   organisation_id: int | None = None) -> dict:
    """Waiting requests oldest first, or the taken ones newest first (the last 100)."""
    org = data.org_for_write(session, key, organisation_id)
    rows = callbacks.queue(session, org.id, waiting=state == "waiting")
    return {"items": [_callback(session, r) for r in rows]}


@router.post("/callbacks/{request_id}/take", response_model=CallbackOut, tags=["callbacks"])
def take_callback(request_id: int, session: SessionDep, key: KeyDep) -> dict:
    """The office called back: the request leaves the queue (audited); the phone shows when."""
    row = data.get_scoped(session, key, CallbackRequest, request_id)
    callbacks.take(session, row.organisation_id, row.id, who=data.who(key), role=key.role)
    session.commit()
    return _callback(session, row)
