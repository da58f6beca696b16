"""Sign in (email and password, or an API key such as the one `telegest up` writes) and out."""
from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from fleet import audit, i18n, throttle
from fleet.console import sessions
from fleet.console.auth import (PRELOGIN_COOKIE, PRELOGIN_SECONDS, SESSION_COOKIE,
                                authenticate, key_sign_in, sign, tokens_match, unsign)
from fleet.console.web import PosterDep, SessionDep, language, lifetimes, page, redirect
from fleet.i18n import N_
from fleet.models import User

router = APIRouter(include_in_schema=False)

EXPIRED = (N_("Your session has expired: please sign in again"))
REFUSED = (N_("Wrong email or password"))
BAD_KEY = N_("Unknown or revoked key")
LOCKED = (N_("Too many failed sign-ins: try again in {minutes} min"))
BUSY = (N_("Too many sign-ins at once: try again in a moment"))
STALE = (N_("The sign-in form was out of date: try again"))


def _safe_next(url: str | None) -> str:
    return url if url and url.startswith("/") and not url.startswith("//") else "/board"


def _login_page(request: Request, error: str | None = None, status_code: int = 200,
                next_url: str = "/board") -> Response:
    """The sign-in form, with a fresh pre-login CSRF token in a signed cookie and the form."""
    token = secrets.token_urlsafe(24)
    resp = page(request, "login.html", None, status_code, error=error, csrf=token,
                next_url=next_url)
    resp.set_cookie(PRELOGIN_COOKIE, sign({"csrf": token, "exp": int(time.time())
                                           + PRELOGIN_SECONDS}),
                    httponly=True, samesite="strict", secure=request.url.scheme == "https",
                    max_age=PRELOGIN_SECONDS)
    return resp


@router.get("/login")
def login_page(request: Request, next: str | None = None, expired: int = 0) -> Response:
    return _login_page(request, EXPIRED if expired else None, next_url=_safe_next(next))


@router.get("/board/login")
def board_login_page() -> Response:
    return redirect("/login?next=/board")


@router.post("/login")
def login(request: Request, session: SessionDep, csrf: Annotated[str, Form()] = "",
          email: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
          key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/board") -> Response:
    pre = unsign(request.cookies.get(PRELOGIN_COOKIE, "")) or {}
    next_url = _safe_next(next)
    if not tokens_match(csrf, pre.get("csrf")) or pre.get("exp", 0) <= time.time():
        return _login_page(request, STALE, 403, next_url)
    account = f"console:{(email.strip().lower() if not key else 'key')[:150]}"
    address = f"address:{request.client.host if request.client else '?'}"
    wait = max(throttle.ACCOUNTS.locked_for(account) if not key else 0,
               throttle.ADDRESSES.locked_for(address))
    if wait:  # refused before any hash is computed
        minutes = -(-int(wait) // 60)
        return _refused(request, i18n.gettext(language(request), LOCKED).format(minutes=minutes),
                        429, next_url, wait)
    if key:
        found = key_sign_in(session, key)
        if found is None:
            count_failure(session, address=address)
            return _login_page(request, BAD_KEY, 401, next_url)
        cookie, _ = sessions.start(session, lifetimes(request), key=found)
        who, role = f"api_key:{found.id}:{found.label}", found.role
    else:
        try:
            user = authenticate(session, email, password)
        except throttle.Busy:
            return _refused(request, BUSY, 503, next_url, 1)
        if user is None:
            if _known(session, email):  # an unknown address is not written: a spray of made-up
                # accounts would otherwise queue a database write per guess behind the ingest
                audit.record(session, f"login:{email.strip().lower()[:150]}", "login_refused",
                             "console")
            count_failure(session, account, address)
            session.commit()
            return _login_page(request, REFUSED, 401, next_url)
        throttle.ACCOUNTS.success(account)
        cookie, _ = sessions.start(session, lifetimes(request), user=user)
        who, role = f"user:{user.email}", user.role
    audit.record(session, who, "login", "console", role=role)
    session.commit()
    if role == "technician" and next_url == "/board":
        next_url = "/devices"
    resp = redirect(next_url)
    # no max_age: the cookie goes with the browser; the row says how long the session lasts
    resp.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https")
    resp.delete_cookie(PRELOGIN_COOKIE)
    return resp


def _refused(request: Request, message: str, status: int, next_url: str,
             wait: float) -> Response:
    resp = _login_page(request, message, status, next_url)
    resp.headers["Retry-After"] = throttle.retry_after(wait)
    return resp


def _known(session, email: str) -> bool:
    return session.scalar(select(User.id).where(
        func.lower(User.email) == email.strip().lower()).limit(1)) is not None


def count_failure(session, account: str | None = None, address: str | None = None) -> None:
    """Count a failed sign-in (or a wrong current password on /account); the failure that
    starts a lockout is audited (it ends by itself after throttle's lock time)."""
    for limiter, key in ((throttle.ACCOUNTS, account), (throttle.ADDRESSES, address)):
        if key and limiter.failure(key):
            audit.record(session, "fleet", "lockout", key,
                         why=f"{limiter.limit} failed sign-ins within "
                             f"{int(limiter.window_s // 60)} min: locked for "
                             f"{int(limiter.lock_s // 60)} min")
    if session.new:
        session.commit()


@router.post("/logout")
def logout(viewer: PosterDep, session: SessionDep) -> Response:
    """Deletes the session's row: the cookie, kept or copied, signs no one in any more."""
    sessions.end(session, viewer.session_id)
    audit.record(session, viewer.who, "logout", "console", role=viewer.role)
    session.commit()
    # the sign-in page stays in the language the person chose (it has no viewer to ask)
    resp = redirect(f"/login?lang={viewer.language}" if viewer.language else "/login",
                    "signed_out")
    resp.delete_cookie(SESSION_COOKIE)
    return resp
