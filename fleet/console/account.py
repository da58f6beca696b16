"""The signed-in person's own page (/account): the console's language, their open sessions,
"sign out everywhere", and a new password (which ends their other sessions)."""
from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from fleet import i18n, throttle
from fleet.console import sessions
from fleet.console.auth import MIN_PASSWORD, SESSION_COOKIE, AuthError, authenticate
from fleet.console.login import LOCKED, count_failure
from fleet.console.users import set_language, set_password, sign_out_everywhere
from fleet.console.web import (PosterDep, SessionDep, ViewerDep, language, lifetimes,
                                organisation, page, redirect)
from fleet.i18n import N_
from fleet.models import User

router = APIRouter(include_in_schema=False)

KEY_SESSION = (N_("Signed in with an API key: revoking the key ends its sessions"))


def _page(request: Request, session, viewer, status_code: int = 200,
          error: str | None = None) -> Response:
    org = organisation(session, viewer)
    tz = ZoneInfo(org.timezone if org else "Europe/Paris")
    rows = (sessions.of_user(session, viewer.user_id, lifetimes(request))
            if viewer.user_id else [])
    settings = request.app.state.settings
    resp = page(request, "account.html", viewer, status_code, error=error, rows=rows,
                min_password=MIN_PASSWORD, languages=i18n.NAMES, language=viewer.language,
                idle=settings.console_idle_minutes, lifetime=settings.console_session_minutes,
                key_session=None if viewer.user_id else KEY_SESSION,
                fmt=lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M"))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@router.get("/account")
def account(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    return _page(request, session, viewer)


@router.post("/account/sign-out-everywhere")
def everywhere(session: SessionDep, viewer: PosterDep) -> Response:
    """Ends every session of this user, on every browser, this one too."""
    if viewer.user_id is None:
        return redirect("/account")
    sign_out_everywhere(session, viewer.user_id, viewer.who, viewer.role)
    session.commit()
    resp = redirect(f"/login?lang={viewer.language}" if viewer.language else "/login",
                    "signed_out_everywhere")
    resp.delete_cookie(SESSION_COOKIE)
    return resp


@router.post("/account/language")
def choose_language(request: Request, session: SessionDep, viewer: PosterDep,
                    language: Annotated[str, Form()] = "") -> Response:
    """The console's language for this user: fr, en, or empty for the browser's own."""
    if viewer.user_id is None:  # a key's session has no user to keep it: the browser's
        return redirect("/account")
    chosen = i18n.normalise(language)
    if language.strip() and chosen is None:
        return _page(request, session, viewer, 422,
                     N_("Choose Français, English, or the browser's language"))
    set_language(session, viewer.user_id, chosen, by=viewer.who, role=viewer.role)
    session.commit()
    return redirect("/account", "language")


@router.post("/account/password")
def new_password(request: Request, session: SessionDep, viewer: PosterDep,
                 current: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                 again: Annotated[str, Form()] = "") -> Response:
    """The current password, then the new one twice; the other sessions end, this one stays."""
    if viewer.user_id is None:
        return redirect("/account")
    user = session.get(User, viewer.user_id)
    account = f"console:{user.email}"  # the sign-in's counter: no guessing here either
    wait = throttle.ACCOUNTS.locked_for(account)
    if wait:
        minutes = -(-int(wait) // 60)
        resp = _page(request, session, viewer, 429,
                     i18n.gettext(language(request), LOCKED).format(minutes=minutes))
        resp.headers["Retry-After"] = throttle.retry_after(wait)
        return resp
    try:
        if authenticate(session, user.email, current) is None:
            count_failure(session, account)
            raise AuthError(N_("the current password is wrong"))
        if password != again:
            raise AuthError(N_("the two new passwords differ"))
        set_password(session, user.email, password, by=viewer.who,
                     keep_id=viewer.session_id)
    except throttle.Busy:
        session.rollback()
        return _page(request, session, viewer, 503, N_("too many sign-ins at once: try again"))
    except AuthError as e:
        session.rollback()
        return _page(request, session, viewer, 400, str(e))
    session.commit()
    return redirect("/account", "password_changed")
