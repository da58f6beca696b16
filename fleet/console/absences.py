"""The absences page: requests to approve or refuse (with a reason), absences recorded by the
office, and the visits to replace (planned visits of a caregiver away, approved).

Planners only; every write checks the CSRF token and is audited by fleet.absences as the
signed-in person. A refusal (overlap, end before start, a refusal without its reason...) shows
the page again with its message and the values typed, and changes nothing.
"""
from __future__ import annotations

from datetime import date, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import absences
from fleet.console import forms
from fleet.console.auth import Viewer
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.i18n import N_
from fleet.models import ABSENCE_STATES, Absence, Caregiver, Client, Organisation
from fleet.types import plain_int, utcnow

router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]
STATES = {"requested": N_("requested"), "approved": N_("approved"),
          "refused": N_("refused"), "cancelled": N_("cancelled")}
assert tuple(STATES) == ABSENCE_STATES
KIND_LABELS = {k: f"{en} · {fr}" for k, (en, fr) in absences.KINDS.items()}
# ?done=<key> after a write: fixed texts only, never text from the URL
FLASH = {"approved": N_("Absence approved: its planned visits are to replace"),
         "refused": N_("Absence refused: the caregiver sees the reason"),
         "cancelled": N_("Absence cancelled"),
         "recorded": N_("Absence recorded (approved)"),
         "already": N_("Already recorded: this form was sent twice")}


def _org(session: Session, viewer: Viewer) -> Organisation:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    return org


def _absence(session: Session, org: Organisation, absence_id: int) -> Absence:
    absence = session.get(Absence, absence_id)
    if absence is None or absence.organisation_id != org.id:
        raise Missing(f"No absence {absence_id} · Aucune absence {absence_id}")
    return absence


def _when(absence: Absence, tz: ZoneInfo) -> str:
    start, end = absence.starts_at.astimezone(tz), absence.ends_at.astimezone(tz)
    if absence.all_day:
        last = (end - timedelta(days=1)).date()
        days = start.date().isoformat() + ("" if last == start.date() else f" → {last}")
        return days + " (" + N_("whole days") + ")"
    return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}"


def _page(request: Request, session: Session, viewer: Viewer, org: Organisation,
          state: str = "", error: str | None = None, status_code: int = 200,
          values: dict | None = None, done: str = "") -> Response:
    tz = ZoneInfo(org.timezone)
    q = select(Absence).where(Absence.organisation_id == org.id)
    if state in STATES:
        q = q.where(Absence.state == state)
    rows = list(session.scalars(q.order_by(
        (Absence.state != "requested"), Absence.starts_at.desc(), Absence.id.desc()).limit(200)))
    caregivers = list(session.scalars(select(Caregiver).where(
        Caregiver.organisation_id == org.id).order_by(Caregiver.name)))
    names = {c.id: c.name for c in caregivers}
    replace = absences.to_replace(session, org.id, since=utcnow())
    clients = {c.id: c.name for c in session.scalars(select(Client).where(
        Client.id.in_({v.client_id for v, _ in replace})))}
    covered = {a.id: len(absences.covered_visits(session, a)) for a in rows}
    return page(request, "absences.html", viewer, status_code, org=org, rows=rows,
                names=names, caregivers=[c for c in caregivers if c.active], state=state,
                states=STATES, kinds=KIND_LABELS, covered=covered, replace=replace,
                clients=clients, when=lambda a: _when(a, tz), error=error,
                values=values or {}, done=FLASH.get(done, ""),
                form_id=(values or {}).get("form_id") or forms.new_form_id(),
                fmt=lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                hm=lambda t: t.astimezone(tz).strftime("%H:%M"))


@router.get("/absences")
def absences_page(request: Request, session: SessionDep, viewer: PlannerDep,
                  state: Annotated[str, Query()] = "", done: Annotated[str, Query()] = ""
                  ) -> Response:
    return _page(request, session, viewer, _org(session, viewer), state, done=done)


def _day(raw: str, what: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise absences.AbsenceRefused(422, f"{what}: {raw!r} is not a date (YYYY-MM-DD) · "
                                           "n'est pas une date") from None


def _time(raw: str, what: str) -> time | None:
    if not raw.strip():
        return None
    try:
        return time.fromisoformat(raw.strip())
    except ValueError:
        raise absences.AbsenceRefused(422, f"{what}: {raw!r} is not a time (HH:MM) · "
                                           "n'est pas une heure") from None


@router.post("/absences")
def record_absence(request: Request, session: SessionDep, viewer: PlannerPostDep,
                   caregiver_id: FormStr = "", kind: FormStr = "", first_day: FormStr = "",
                   last_day: FormStr = "", start_time: FormStr = "", end_time: FormStr = "",
                   note: FormStr = "", form_id: FormStr = "") -> Response:
    """The office records an absence itself: approved at once. The same form sent twice
    (back button, double click) records it once (fleet.console.forms)."""
    org = _org(session, viewer)
    values = {"caregiver_id": caregiver_id, "kind": kind, "first_day": first_day,
              "last_day": last_day or first_day, "start_time": start_time,
              "end_time": end_time, "note": note, "form_id": form_id}
    try:
        with forms.once(form_id):
            if forms.earlier_result(session, viewer.who, form_id):
                return redirect("/absences?done=already")
            return _record(request, session, viewer, org, values)
    except ValueError as e:  # no form id: a form not rendered by this console (as planning)
        session.rollback()
        return _page(request, session, viewer, org, error=f"{e} · formulaire incomplet : "
                     "rechargez la page", status_code=422, values=values)


def _record(request: Request, session: Session, viewer: Viewer, org: Organisation,
            values: dict) -> Response:
    caregiver_id, kind, note = values["caregiver_id"], values["kind"], values["note"]
    first_day, last_day = values["first_day"], values["last_day"]
    start_time, end_time = values["start_time"], values["end_time"]
    try:
        ident = plain_int(caregiver_id)
        caregiver = session.get(Caregiver, ident) if ident is not None else None
        if caregiver is None or caregiver.organisation_id != org.id:
            raise absences.AbsenceRefused(422, N_("choose a caregiver"))
        first = _day(first_day, N_("first day"))
        when = absences.period(org.timezone, first,
                               _day(last_day, N_("last day")) if last_day.strip()
                               else first, _time(start_time, N_("start")),
                               _time(end_time, N_("end")))
        absences.create(session, caregiver, kind, when, note, who=viewer.who,
                        role=viewer.role, approved=True, organisation_id=org.id,
                        form_id=values["form_id"])
        session.commit()
    except absences.AbsenceRefused as e:
        session.rollback()
        return _page(request, session, viewer, org, error=e.message, status_code=e.status,
                     values=values)
    return redirect("/absences?done=recorded")


@router.post("/absences/{absence_id}/{action}")
def decide(absence_id: int, action: str, request: Request, session: SessionDep,
           viewer: PlannerPostDep, reason: FormStr = "") -> Response:
    """approve, refuse (with its reason) or cancel."""
    if action not in ("approve", "refuse", "cancel"):
        raise Missing(N_("No such action"))
    org = _org(session, viewer)
    absence = _absence(session, org, absence_id)
    try:
        if action == "cancel":
            absences.cancel(session, absence, reason, who=viewer.who, role=viewer.role,
                            organisation_id=org.id)
        else:
            absences.decide(session, absence, action == "approve", reason, who=viewer.who,
                            role=viewer.role, organisation_id=org.id)
        session.commit()
    except absences.AbsenceRefused as e:
        session.rollback()
        return _page(request, session, viewer, org, error=e.message, status_code=e.status)
    done = {"approve": "approved", "refuse": "refused", "cancel": "cancelled"}[action]
    return redirect(f"/absences?done={done}")
