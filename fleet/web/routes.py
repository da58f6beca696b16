"""The manager's board pages: sign in with an API key, today's visits, live rows.

Signing in stores the key in an HttpOnly, SameSite=Strict cookie; every page checks it like the
REST API checks its Bearer header. (Accounts with passwords and roles come with the console.)
"""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.api.deps import get_session
from fleet.keys import find_api_key as verify_api_key
from fleet.models import ApiKey, Organisation
from fleet.web.board import STATUS_LABELS, board_rows, recent_anomalies

COOKIE = "tg_key"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)
SessionDep = Annotated[Session, Depends(get_session)]


class NotSignedIn(Exception):
    pass


def signed_in_key(request: Request, session: SessionDep) -> ApiKey:
    key = verify_api_key(session, request.cookies.get(COOKIE, ""))
    if key is None:
        raise NotSignedIn()
    return key


KeyDep = Annotated[ApiKey, Depends(signed_in_key)]


def organisation_for(session: Session, key: ApiKey) -> Organisation | None:
    q = select(Organisation).order_by(Organisation.id)
    if key.organisation_id:
        q = q.where(Organisation.id == key.organisation_id)
    return session.scalars(q.limit(1)).first()


def _context(session: Session, key: ApiKey, day: date | None, status: str | None) -> dict:
    org = organisation_for(session, key)
    if org is None:
        return {"org": None}
    now = datetime.now(timezone.utc)
    tz = ZoneInfo(org.timezone)
    day = day or now.astimezone(tz).date()
    status = status if status in STATUS_LABELS else None
    rows = board_rows(session, org, day, now, status=status)
    query = urlencode({k: v for k, v in (("day", day.isoformat()), ("status", status)) if v})
    return {
        "org": org, "day": day, "rows": rows, "labels": STATUS_LABELS,
        "counts": dict(Counter(r.status for r in rows)), "filters": {"status": status},
        "anomalies": recent_anomalies(session, org), "query": query, "refresh_ms": 2000,
        "fmt": lambda t: t.astimezone(tz).strftime("%H:%M"),
    }


@router.get("/board", response_class=HTMLResponse)
def board(request: Request, session: SessionDep, key: KeyDep,
          day: Annotated[date | None, Query()] = None,
          status: Annotated[str | None, Query()] = None) -> Response:
    ctx = _context(session, key, day, status)
    if ctx["org"] is None:
        return HTMLResponse("<p>No organisation yet · Aucune structure</p>")
    return templates.TemplateResponse(request, "board.html", ctx)


@router.get("/board/rows", response_class=HTMLResponse)
def board_rows_fragment(request: Request, session: SessionDep, key: KeyDep,
                        day: Annotated[date | None, Query()] = None,
                        status: Annotated[str | None, Query()] = None) -> Response:
    ctx = _context(session, key, day, status)
    if ctx["org"] is None:
        return HTMLResponse("")
    return templates.TemplateResponse(request, "board_rows.html", ctx)


@router.get("/board/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/board/login")
def login(request: Request, session: SessionDep, key: Annotated[str, Form()]) -> Response:
    if verify_api_key(session, key.strip()) is None:
        return templates.TemplateResponse(
            request, "login.html", {"error": "Unknown or revoked key · Clé inconnue ou révoquée"},
            status_code=401)
    resp = RedirectResponse("/board", status_code=303)
    resp.set_cookie(COOKIE, key.strip(), httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", max_age=12 * 3600)
    return resp


@router.post("/board/logout")
def logout() -> Response:
    resp = RedirectResponse("/board/login", status_code=303)
    resp.delete_cookie(COOKIE)
    return resp


def install(app) -> None:
    """Mount the board pages, their static files and the sign-in redirect on `app`."""
    from fastapi.staticfiles import StaticFiles

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")),
              name="static")

    @app.exception_handler(NotSignedIn)
    async def _to_login(request: Request, exc: NotSignedIn) -> Response:
        if request.url.path.startswith("/board/rows"):
            return Response(status_code=401)
        return RedirectResponse("/board/login", status_code=303)
