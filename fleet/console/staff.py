"""Staff accounts from the console (/users): invite by e-mail, disable or enable, send a
password-reset link; and the public page an invitation or reset link opens (/invite/<token>),
where the person chooses a password and is signed in. Rules in fleet.invitations; accounts in
fleet.console.users (the CLI's `telegest fleet user` uses the same)."""
from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select

from fleet import audit, invitations
from fleet.console import users
from fleet.console.auth import MIN_PASSWORD, SESSION_COOKIE, Viewer
from fleet.console.sessions import start
from fleet.console.web import (Forbidden, Missing, PlannerDep, PlannerPostDep, SessionDep,
                               lifetimes, organisation, page, redirect)
from fleet.i18n import N_
from fleet.invitations import InvitationError, Inviter
from fleet.models import ROLES, Invitation, Organisation, User
from fleet.types import plain_int, utcnow

router = APIRouter(include_in_schema=False)


def _inviter(viewer: Viewer) -> Inviter:
    if viewer.user_id is None and viewer.role != "admin":
        raise Forbidden(N_("Sign in with your own account to manage staff"))
    return Inviter(viewer.who, viewer.role, viewer.organisation_id)


def _page(request: Request, session, viewer: Viewer, status_code: int = 200,
          error: str | None = None, values: dict | None = None) -> Response:
    q = select(User).order_by(User.email)
    pending = select(Invitation).where(Invitation.used_at.is_(None),
                                       Invitation.expires_at > utcnow(),
                                       Invitation.purpose == "invite")
    if viewer.organisation_id is not None:
        q = q.where(User.organisation_id == viewer.organisation_id)
        pending = pending.where(Invitation.organisation_id == viewer.organisation_id)
    org = organisation(session, viewer)
    tz = ZoneInfo(org.timezone if org else "Europe/Paris")
    inviter = _inviter(viewer)
    return page(request, "users.html", viewer, status_code, error=error,
                values=values or {"role": "manager"},
                people=list(session.scalars(q)),
                pending=list(session.scalars(pending.order_by(Invitation.created_at.desc()))),
                roles=[r for r in ROLES if invitations.may_manage(
                    inviter, r, viewer.organisation_id or (org.id if org else None))],
                organisations=(list(session.scalars(select(Organisation).order_by(
                    Organisation.name))) if viewer.organisation_id is None else []),
                may=lambda u: invitations.may_manage(inviter, u.role, u.organisation_id)
                and u.id != viewer.user_id,
                fmt=lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M"))


@router.get("/users")
def staff(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    return _page(request, session, viewer)


@router.post("/users/invite")
def invite(request: Request, session: SessionDep, viewer: PlannerPostDep,
           email: Annotated[str, Form()] = "", role: Annotated[str, Form()] = "",
           organisation_id: Annotated[str, Form()] = "") -> Response:
    org_id = viewer.organisation_id
    if org_id is None:  # a fleet admin picks the organisation (none: every organisation)
        org_id = plain_int(organisation_id)
    try:
        invitations.invite(session, _inviter(viewer), email, role, org_id,
                           request.app.state.settings.link)
    except InvitationError as e:
        session.rollback()
        return _page(request, session, viewer, 422, str(e),
                     {"email": email, "role": role})
    session.commit()
    return redirect("/users", "invited")


def _person(session, viewer: Viewer, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or (viewer.organisation_id is not None
                        and user.organisation_id != viewer.organisation_id):
        raise Missing(f"No user {user_id} · Utilisateur inconnu")
    if user.id == viewer.user_id:
        raise Forbidden(N_("Your own account is managed on the Account page"))
    if not invitations.may_manage(_inviter(viewer), user.role, user.organisation_id):
        raise Forbidden(f"A {viewer.role} may not manage a {user.role} account · Vous ne "
                        "pouvez pas gérer ce compte")
    return user


@router.post("/users/{user_id}/disable")
def disable(user_id: int, session: SessionDep, viewer: PlannerPostDep) -> Response:
    """Disabled at once: every session of theirs ends, their password no longer signs in."""
    user = _person(session, viewer, user_id)
    users.set_active(session, user.email, False, by=viewer.who)
    session.commit()
    return redirect("/users", "disabled")


@router.post("/users/{user_id}/enable")
def enable(user_id: int, session: SessionDep, viewer: PlannerPostDep) -> Response:
    user = _person(session, viewer, user_id)
    users.set_active(session, user.email, True, by=viewer.who)
    session.commit()
    return redirect("/users", "enabled")


@router.post("/users/{user_id}/reset")
def reset(request: Request, user_id: int, session: SessionDep,
          viewer: PlannerPostDep) -> Response:
    user = _person(session, viewer, user_id)
    try:
        invitations.reset(session, _inviter(viewer), user.email,
                          request.app.state.settings.link)
    except InvitationError as e:
        session.rollback()
        return _page(request, session, viewer, 422, str(e))
    session.commit()
    return redirect("/users", "reset_sent")


def _link_page(request: Request, token: str, inv: Invitation | None, status_code: int = 200,
               error: str | None = None) -> Response:
    resp = page(request, "invite.html", None, status_code, token=token, inv=inv, error=error,
                min_password=MIN_PASSWORD)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the token is in the path
    return resp


@router.get("/invite/{token}")
def link_page(request: Request, token: str, session: SessionDep) -> Response:
    try:
        inv = invitations.find(session, token)
    except InvitationError as e:
        return _link_page(request, token, None, 410, str(e))
    return _link_page(request, token, inv)


@router.post("/invite/{token}")
def use_link(request: Request, token: str, session: SessionDep,
             password: Annotated[str, Form()] = "",
             again: Annotated[str, Form()] = "") -> Response:
    """The token in the path is the proof (a secret only its e-mail saw): no CSRF form token
    is needed before sign-in, as for the sign-in form's own pre-login token."""
    try:
        user = invitations.accept(session, token, password, again)
    except InvitationError as e:
        session.rollback()
        try:
            inv = invitations.find(session, token)
        except InvitationError:
            return _link_page(request, token, None, 410, str(e))
        return _link_page(request, token, inv, 422, str(e))
    cookie, _ = start(session, lifetimes(request), user=user)
    audit.record(session, f"user:{user.email}", "login", "console", role=user.role,
                 detail={"by": "one-time link"})
    session.commit()
    resp = redirect("/devices" if user.role == "technician" else "/board", "welcome")
    resp.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https")
    return resp
