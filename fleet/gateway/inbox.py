"""The phone's side of messages and call-backs (docs/protocol.md, "Device gateway"):
its inbox (messages, marked delivered as they go out, and its call-back requests with when
each was taken), read receipts and "J'ai lu", a message to the office, a call-back request.
Whatever the phone sends carries the phone's own `ref` or the message's id, so the resends of
its offline queue are harmless. Data functions: fleet.messages, fleet.callbacks."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from fleet import callbacks, messages
from fleet.api.deps import SessionDep
from fleet.gateway.routes import NO_STORE, Phone

router = APIRouter(tags=["device gateway"])


def _refused(e: messages.MessageProblem) -> JSONResponse:
    error = "not_found" if e.status == 404 else "bad_message"
    return JSONResponse({"error": error, "field": e.field, "detail": str(e)}, e.status,
                        headers=NO_STORE)


def _when(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts, timezone.utc) if ts else None


@router.get("/inbox")
def inbox(device: Phone, session: SessionDep) -> JSONResponse:
    """`{"messages": [{"id", "subject", "body", "mandatory", "at", "read", "ack"}],
    "callbacks": [{"ref", "reason", "at", "taken"}], "sent": [{"ref", "subject", "at"}]}`,
    newest first; the messages not yet on the phone are marked delivered."""
    if device.caregiver_id is None:
        return JSONResponse({"messages": [], "callbacks": [], "sent": []}, headers=NO_STORE)
    out = {"messages": messages.for_phone(session, device.caregiver_id),
           "callbacks": callbacks.for_phone(session, device.caregiver_id),
           "sent": messages.sent_by(session, device.caregiver_id)}
    session.commit()
    return JSONResponse(out, headers=NO_STORE)


class ReadReceipt(BaseModel):
    ack: bool = False  # "J'ai lu" tapped, not only opened
    at: int | None = Field(None, ge=0)  # when, on the phone (a queued receipt is sent later)


@router.post("/messages/{message_id}/read")
def read(message_id: int, body: ReadReceipt, device: Phone,
         session: SessionDep) -> JSONResponse:
    try:
        r = messages.mark_read(session, device.caregiver_id or 0, message_id, ack=body.ack,
                               at=_when(body.at))
    except messages.MessageProblem as e:
        return _refused(e)
    session.commit()
    return JSONResponse({"id": message_id, "read": int(r.read_at.timestamp()),
                         "ack": int(r.acknowledged_at.timestamp()) if r.acknowledged_at
                         else None}, headers=NO_STORE)


class ToOffice(BaseModel):
    ref: str = Field(max_length=messages.REF_MAX)
    subject: str = Field(max_length=messages.SUBJECT_MAX + 100)
    body: str = Field(max_length=messages.BODY_MAX + 1000)
    visit: int | None = None


@router.post("/messages")
def write(body: ToOffice, request: Request, device: Phone,
          session: SessionDep) -> JSONResponse:
    """A message to the office: 201 when new, 200 for a resend of the same `ref`."""
    try:
        got = messages.from_caregiver(session, device, ref=body.ref, subject=body.subject,
                                      body=body.body, visit_id=body.visit,
                                      public_url=request.app.state.settings.public_url)
    except messages.MessageProblem as e:
        session.rollback()
        return _refused(e)
    session.commit()
    return JSONResponse({"id": got.message.id, "ref": body.ref},
                        201 if got.created else 200, headers=NO_STORE)


class CallMeBack(BaseModel):
    ref: str = Field(max_length=messages.REF_MAX)
    reason: str = Field("", max_length=callbacks.REASON_MAX + 100)
    at: int | None = Field(None, ge=0)


@router.post("/callbacks")
def call_me_back(body: CallMeBack, device: Phone, session: SessionDep) -> JSONResponse:
    try:
        row, created = callbacks.ask(session, device, ref=body.ref, reason=body.reason,
                                     at=_when(body.at))
    except messages.MessageProblem as e:
        session.rollback()
        return _refused(e)
    session.commit()
    return JSONResponse({"ref": row.ref, "at": int(row.created_at.timestamp()),
                         "taken": int(row.taken_at.timestamp()) if row.taken_at else None},
                        201 if created else 200, headers=NO_STORE)
