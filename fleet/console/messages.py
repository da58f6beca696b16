"""The office's side of the caregivers' link (managers and admins; CSRF-checked; audited by
the data layers): /messages (write to caregivers, what was sent with its read receipts),
/messages/inbox (what caregivers wrote), /callbacks (the call-me-back queue with waiting times
and "done"), /numbers (emergency numbers, office contacts, the directory setting).
fleet.messages, fleet.callbacks and fleet.contacts are the layers the API calls too."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from fleet import callbacks, contacts, messages
from fleet.console.auth import Viewer
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.i18n import N_
from fleet.models import Caregiver, Client, Message, Organisation, Visit
from fleet.types import utcnow

router = APIRouter(include_in_schema=False)
OFFICE_ROWS = 8  # office contacts on the form (the API takes up to contacts.MAX_OFFICE)


def _org(session, viewer: Viewer) -> Organisation:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    return org


def _fmt(org: Organisation):
    tz = ZoneInfo(org.timezone)
    return lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M") if t else ""


def waited(since: datetime, until: datetime | None = None) -> str:
    """How long, in words a coordinator reads at a glance: `4 min`, `1 h 05`, `2 d 3 h`."""
    minutes = max(0, int(((until or utcnow()) - since).total_seconds()) // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        return f"{minutes // 60} h {minutes % 60:02d}"
    return f"{minutes // 1440} j {minutes % 1440 // 60} h"


def _compose(request: Request, session, viewer: Viewer, org: Organisation,
             values: dict | None = None, error: str | None = None,
             status_code: int = 200) -> Response:
    sent = messages.listing(session, org.id, "to_caregivers", limit=50)
    people = list(session.scalars(select(Caregiver).where(
        Caregiver.organisation_id == org.id, Caregiver.active).order_by(Caregiver.name)))
    return page(request, "messages.html", viewer, status_code, org=org, sent=sent,
                counts=messages.counts(session, [m.id for m in sent]), people=people,
                values=values or {"to": "chosen", "ids": []}, error=error, fmt=_fmt(org),
                tab="sent")


@router.get("/messages")
def messages_page(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    return _compose(request, session, viewer, _org(session, viewer))


@router.post("/messages")
async def send(request: Request, session: SessionDep, viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    form = await request.form()
    values = {"subject": str(form.get("subject", "")), "body": str(form.get("body", "")),
              "mandatory": form.get("mandatory") == "on", "to": str(form.get("to", "")),
              "ids": [int(i) for i in form.getlist("caregiver") if str(i).isdigit()]}
    try:
        m = messages.send_to_caregivers(
            session, org, subject=values["subject"], body=values["body"],
            mandatory=values["mandatory"],
            caregiver_ids=None if values["to"] == "everyone" else values["ids"],
            who=viewer.who, role=viewer.role, user_id=viewer.user_id)
    except messages.MessageProblem as e:
        session.rollback()
        return _compose(request, session, viewer, org, values, str(e), 422)
    session.commit()
    return redirect(f"/messages/{m.id}", "sent")


@router.get("/messages/inbox")
def inbox(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    rows = messages.listing(session, org.id, "to_office", limit=100)
    names = {c.id: c.name for c in session.scalars(select(Caregiver).where(
        Caregiver.id.in_({m.caregiver_id for m in rows if m.caregiver_id})))}
    visits = {v.id: v for v in session.scalars(select(Visit).where(
        Visit.id.in_({m.visit_id for m in rows if m.visit_id})))}
    clients = {c.id: c.name for c in session.scalars(select(Client).where(
        Client.id.in_({v.client_id for v in visits.values()})))}
    return page(request, "messages_inbox.html", viewer, org=org, rows=rows, names=names,
                visits=visits, clients=clients, fmt=_fmt(org), tab="inbox")


@router.get("/messages/{message_id}")
def receipts(message_id: int, request: Request, session: SessionDep,
             viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    m = session.get(Message, message_id)
    if m is None or m.organisation_id != org.id or m.direction != "to_caregivers":
        raise Missing(N_("No such message"))
    return page(request, "message.html", viewer, org=org, m=m,
                rows=messages.receipts(session, m.id),
                counts=messages.counts(session, [m.id]).get(m.id), fmt=_fmt(org), tab="sent")


@router.get("/callbacks")
def callback_queue(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    waiting = callbacks.queue(session, org.id)
    taken = callbacks.queue(session, org.id, waiting=False, limit=30)
    names = {c.id: c.name for c in session.scalars(select(Caregiver).where(
        Caregiver.organisation_id == org.id))}
    return page(request, "callbacks.html", viewer, org=org, waiting=waiting, taken=taken,
                names=names, waited=waited, fmt=_fmt(org), tab="callbacks")


@router.post("/callbacks/{request_id}/take")
def take(request_id: int, session: SessionDep, viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    try:
        callbacks.take(session, org.id, request_id, who=viewer.who, role=viewer.role)
    except messages.MessageProblem:
        raise Missing(N_("No such call-back request")) from None
    session.commit()
    return redirect("/callbacks", "taken")


def _numbers_form(request: Request, viewer: Viewer, org: Organisation, book: dict,
                  error: str | None = None, status_code: int = 200) -> Response:
    blank = {"label": "", "number": ""}
    emergency = (book["emergency"] + [blank] * contacts.MAX_EMERGENCY)[:contacts.MAX_EMERGENCY]
    office = book["office"] + [blank] * max(0, OFFICE_ROWS - len(book["office"]))
    return page(request, "numbers.html", viewer, status_code, org=org, emergency=emergency,
                office=office, colleagues=book["directory_colleagues"], error=error,
                tab="numbers")


@router.get("/numbers")
def numbers_page(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    return _numbers_form(request, viewer, org, contacts.read(session, org))


@router.post("/numbers")
async def save_numbers(request: Request, session: SessionDep,
                       viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    form = await request.form()

    def rows(kind: str) -> list[dict]:
        return [{"label": str(label), "number": str(number)} for label, number in
                zip(form.getlist(f"{kind}_label"), form.getlist(f"{kind}_number"))]

    book = {"emergency": rows("emergency"), "office": rows("office"),
            "directory_colleagues": form.get("directory_colleagues") == "on"}
    try:
        contacts.replace(session, org, emergency=book["emergency"], office=book["office"],
                         directory_colleagues=book["directory_colleagues"], who=viewer.who,
                         role=viewer.role)
    except contacts.ContactProblem as e:
        session.rollback()
        book = {k: [r for r in v if r["label"] or r["number"]] if isinstance(v, list) else v
                for k, v in book.items()}
        return _numbers_form(request, viewer, org, book, str(e), 422)
    session.commit()
    return redirect("/numbers", "saved")
