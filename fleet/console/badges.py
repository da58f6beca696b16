"""Badges: caregiver cards and client tags (list, issue, revoke, restore, replace) and the
printable A4 sheet of the client tags' QR codes.

The data functions are fleet.badges (the same checks and audit entries as the API and the CLI);
a refusal shows the form again with its message and nothing is kept. Admins, managers and
technicians manage badges (the API's FIELD roles). Technicians see no client record: an owner
is shown to them by number (client #12), as the devices pages hide a device's holder.
"""
from __future__ import annotations

import io
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import badges
from fleet.console import forms
from fleet.console.auth import Viewer
from fleet.console.web import Missing, PosterDep, SessionDep, ViewerDep, organisation, page, \
    redirect
from fleet.i18n import N_
from fleet.models import Badge, Caregiver, Client, Organisation
from fleet.types import plain_int

router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]
KINDS = {"client_tag": N_("Client tag"),
         "caregiver_card": N_("Caregiver card")}
STATES = {"active": N_("active"), "revoked": N_("revoked")}


def _org(session: Session, viewer: Viewer) -> Organisation:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    return org


def _people(session: Session, viewer: Viewer, org: Organisation, model) -> list[tuple]:
    """(id, label, active) of the organisation's clients or caregivers; numbers only for
    those who may not see client records."""
    rows = session.execute(select(model.id, model.name, model.active).where(
        model.organisation_id == org.id).order_by(model.name, model.id)).all()
    if viewer.plans:
        return [tuple(r) for r in rows]
    what = "client" if model is Client else "caregiver"
    return sorted((i, f"{what} #{i}", active) for i, _, active in rows)


def _owners(session: Session, viewer: Viewer, org: Organisation) -> dict[tuple, str]:
    """("client_tag", client id) or ("caregiver_card", caregiver id) -> label."""
    return {(kind, i): label for kind, model in (("client_tag", Client),
                                                 ("caregiver_card", Caregiver))
            for i, label, _ in _people(session, viewer, org, model)}


def _key(b: Badge) -> tuple:
    return b.kind, b.client_id if b.kind == "client_tag" else b.caregiver_id


def _fmt(org: Organisation):
    tz = ZoneInfo(org.timezone)
    return lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M") if t else "—"


def _badge(session: Session, org: Organisation, badge_id: int) -> Badge:
    badge = session.get(Badge, badge_id)
    if badge is None or badge.organisation_id != org.id:
        raise Missing(f"No badge {badge_id} · Aucun badge {badge_id}")
    return badge


@router.get("/badges")
def badge_list(request: Request, session: SessionDep, viewer: ViewerDep,
               kind: str | None = None, client: str | None = None,
               caregiver: str | None = None, state: str | None = None) -> Response:
    org = _org(session, viewer)
    kind = kind if kind in KINDS else None
    state = state if state in STATES else None
    client_id, caregiver_id = plain_int(client), plain_int(caregiver)
    q = select(Badge).where(Badge.organisation_id == org.id).order_by(Badge.id)
    for col, val in ((Badge.kind, kind), (Badge.client_id, client_id),
                     (Badge.caregiver_id, caregiver_id)):
        if val is not None:
            q = q.where(col == val)
    if state:
        q = q.where(Badge.active == (state == "active"))
    found = list(session.scalars(q))
    successors = dict(session.execute(select(Badge.replaces_id, Badge.id).where(
        Badge.replaces_id.in_([b.id for b in found]))).all())
    return page(request, "badges.html", viewer, badges=found, owners=_owners(session, viewer, org),
                successors=successors, kinds=KINDS, states=STATES, kind=kind, state=state,
                client=client_id, caregiver=caregiver_id, fmt=_fmt(org),
                clients=_people(session, viewer, org, Client),
                caregivers=_people(session, viewer, org, Caregiver))


@router.get("/badges/sheet.pdf")
def badge_sheet_pdf(request: Request, session: SessionDep, viewer: ViewerDep,
                    client_id: Annotated[list[int] | None, Query()] = None,
                    badge_id: Annotated[list[int] | None, Query()] = None) -> Response:
    """The QR codes of the active client tags (of these clients, or these tags; all by
    default) on A4 sheets to print and cut (tools.field.sheet)."""
    from tools.field.sheet import BadgeLabel, badge_sheet

    org = _org(session, viewer)
    q = (select(Badge).join(Client, Client.id == Badge.client_id)
         .where(Badge.organisation_id == org.id, Badge.kind == "client_tag", Badge.active)
         .order_by(Client.name, Badge.id))
    if client_id:
        q = q.where(Badge.client_id.in_(client_id))
    if badge_id:
        q = q.where(Badge.id.in_(badge_id))
    tags = list(session.scalars(q))
    if not tags:
        return page(request, "error.html", viewer, 404, title=N_("Nothing to print"),
                    message=N_("No active client tag to print: issue one first"))
    owners = _owners(session, viewer, org)
    out = io.BytesIO()
    badge_sheet([BadgeLabel(owners[_key(t)], t.uid) for t in tags], out)
    return Response(out.getvalue(), media_type="application/pdf", headers={
        "Content-Disposition": 'inline; filename="badges.pdf"', "Cache-Control": "no-store"})


def _issue_form(request: Request, session: Session, viewer: Viewer, org: Organisation,
                values: dict, error: str | None = None, status_code: int = 200) -> Response:
    kind = values.get("kind") if values.get("kind") in KINDS else "client_tag"
    model = Client if kind == "client_tag" else Caregiver
    return page(request, "badge_form.html", viewer, status_code, kind=kind, kinds=KINDS,
                values=values, error=error,
                form_id=values.get("form_id") or forms.new_form_id(),
                owners=[p for p in _people(session, viewer, org, model) if p[2]])


@router.get("/badges/new")
def new_badge(request: Request, session: SessionDep, viewer: ViewerDep,
              kind: str = "client_tag", client: str | None = None,
              caregiver: str | None = None) -> Response:
    return _issue_form(request, session, viewer, _org(session, viewer),
                       {"kind": kind, "owner": (client if kind == "client_tag"
                                                else caregiver) or ""})


def _owner(session: Session, org: Organisation, kind: str, raw: str) -> Caregiver | Client:
    owner_id = plain_int(raw.strip())
    if owner_id is None and kind in KINDS:
        raise badges.BadgeError(422, N_("choose the client or the caregiver"))
    owner = badges.owner_of(session, kind, owner_id if kind == "caregiver_card" else None,
                            owner_id if kind == "client_tag" else None)
    if owner.organisation_id != org.id:
        raise badges.BadgeError(422, "the badge's owner does not exist")
    return owner


@router.post("/badges")
def issue_badge(request: Request, session: SessionDep, viewer: PosterDep,
                kind: FormStr = "", owner: FormStr = "", uid: FormStr = "",
                form_id: FormStr = "") -> Response:
    """A client tag (a signed token unless an existing tag's text is given) or a card."""
    org = _org(session, viewer)
    values = {"kind": kind, "owner": owner, "uid": uid, "form_id": form_id}
    try:
        with forms.once(form_id):
            earlier = forms.earlier_result(session, viewer.who, form_id)
            if earlier:
                return redirect(f"/badges/{earlier.partition(':')[2]}", "already")
            badge = badges.issue(session, viewer.who, _owner(session, org, kind, owner),
                                 uid.strip() or None, role=viewer.role,
                                 note={"form_id": form_id})
            session.commit()
    except badges.BadgeError as e:
        session.rollback()
        return _issue_form(request, session, viewer, org, values, error=e.message,
                           status_code=e.status)
    except ValueError as e:  # no form id
        return _issue_form(request, session, viewer, org, values, error=str(e),
                           status_code=422)
    return redirect(f"/badges/{badge.id}", "issued")


def _badge_page(request: Request, session: Session, viewer: Viewer, org: Organisation,
                badge: Badge, error: str | None = None, status_code: int = 200,
                values: dict | None = None) -> Response:
    successor = session.scalar(select(Badge.id).where(Badge.replaces_id == badge.id))
    return page(request, "badge.html", viewer, status_code, badge=badge, kinds=KINDS,
                owner=_owners(session, viewer, org).get(_key(badge), "?"),
                successor=successor, error=error, values=values or {}, fmt=_fmt(org),
                form_id=forms.new_form_id())


@router.get("/badges/{badge_id}")
def badge_page(badge_id: int, request: Request, session: SessionDep,
               viewer: ViewerDep) -> Response:
    org = _org(session, viewer)
    return _badge_page(request, session, viewer, org, _badge(session, org, badge_id))


@router.post("/badges/{badge_id}/revoke")
def revoke_badge(badge_id: int, request: Request, session: SessionDep,
                 viewer: PosterDep, reason: FormStr = "") -> Response:
    org = _org(session, viewer)
    badge = _badge(session, org, badge_id)
    if not badge.active and reason.strip():  # sent twice: it is done already
        return redirect(f"/badges/{badge.id}", "already")
    try:
        badges.revoke(session, viewer.who, badge, reason, role=viewer.role)
    except badges.BadgeError as e:
        session.rollback()
        return _badge_page(request, session, viewer, org, badge, e.message, e.status,
                           {"reason": reason})
    session.commit()
    return redirect(f"/badges/{badge.id}", "revoked")


@router.post("/badges/{badge_id}/restore")
def restore_badge(badge_id: int, request: Request, session: SessionDep,
                  viewer: PosterDep) -> Response:
    org = _org(session, viewer)
    badge = _badge(session, org, badge_id)
    if badge.active:  # sent twice
        return redirect(f"/badges/{badge.id}", "already")
    try:
        badges.restore(session, viewer.who, badge, role=viewer.role)
    except badges.BadgeError as e:
        session.rollback()
        return _badge_page(request, session, viewer, org, badge, e.message, e.status)
    session.commit()
    return redirect(f"/badges/{badge.id}", "restored")


@router.post("/badges/{badge_id}/replace")
def replace_badge(badge_id: int, request: Request, session: SessionDep,
                  viewer: PosterDep, reason: FormStr = "", uid: FormStr = "",
                  form_id: FormStr = "") -> Response:
    """Revoke the badge and issue its successor in one step; refused, nothing is kept."""
    org = _org(session, viewer)
    badge = _badge(session, org, badge_id)
    values = {"replace_reason": reason, "uid": uid}
    try:
        with forms.once(form_id):
            earlier = forms.earlier_result(session, viewer.who, form_id)
            if earlier:
                return redirect(f"/badges/{earlier.partition(':')[2]}", "already")
            new = badges.replace(session, viewer.who, badge, reason, uid.strip() or None,
                                 role=viewer.role, note={"form_id": form_id})
            session.commit()
    except badges.BadgeError as e:
        session.rollback()
        return _badge_page(request, session, viewer, org, badge, e.message, e.status, values)
    except ValueError as e:  # no form id
        return _badge_page(request, session, viewer, org, badge, str(e), 422, values)
    return redirect(f"/badges/{new.id}", "replaced")
