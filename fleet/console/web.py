"""What every console page shares: templates, the signed-in viewer, CSRF, roles, messages."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import i18n
from fleet.api.deps import get_session
from fleet.console.auth import SESSION_COOKIE, Viewer, tokens_match, viewer_from_cookie
from fleet.console.sessions import Lifetimes, SessionState
from fleet.i18n import N_
from fleet.models import Organisation



def language(request: Request) -> str:
    """The page's language: the signed-in user's setting, else `?lang=`, else the browser's
    Accept-Language, else French (fleet.i18n)."""
    return (getattr(request.state, "language", None)
            or i18n.normalise(request.query_params.get("lang"))
            or i18n.negotiate(request.headers.get("accept-language")))


templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"),
                            context_processors=[lambda request: {"lang": language(request)}])
i18n.install(templates.env)
# a visit's status as the console shows it (the value itself stays in forms and CSS classes)
templates.env.globals["visit_status"] = {
    "planned": N_("planned"), "in_progress": N_("in progress"), "done": N_("done"),
    "cancelled": N_("cancelled")}
SessionDep = Annotated[Session, Depends(get_session)]

# ?msg=<key> after a redirect: fixed texts only, never text from the URL
MESSAGES = {
    "saved": N_("Saved"),
    "created": N_("Created"),
    "already": N_("Already saved: this form was sent twice"),
    "blocked": N_("Device declared lost or stolen: the broker refuses it, a wipe is queued"),
    "blocked_unenforced": N_("Device declared lost or stolen: the fleet refuses its clock-ins "
                             "and a wipe is queued, but this broker does not check logins "
                             "(development broker), so the device can still connect"),
    "imported": N_("Planning imported"),
    "registered": N_("Device registered"),
    "invited": N_("Invitation sent by e-mail (valid 7 days)"),
    "disabled": N_("Account disabled: its sessions have ended"),
    "enabled": N_("Account enabled"),
    "reset_sent": N_("Password-reset link sent by e-mail (valid 24 hours)"),
    "welcome": N_("Welcome: your password is set"),
    "issued": N_("Badge issued"),
    "revoked": N_("Badge revoked: it no longer clocks in"),
    "restored": N_("Badge restored: it clocks in again"),
    "replaced": N_("Badge replaced: the old one no longer clocks in"),
    "signed_out": N_("Signed out"),
    "signed_out_everywhere": N_("Signed out everywhere: every session of yours has ended"),
    "password_changed": N_("Password changed: your other sessions have ended"),
    "corrected": N_("Correction saved"),
    "validated": N_("Visit validated"),
    "reopened": N_("Visit reopened"),
    "handled": N_("Anomaly marked handled"),
    "month_validated": N_("Month validated"),
    "month_reopened": N_("Month reopened"),
    "requeued": N_("Sent again: back in the queue"),
    "sent": N_("Message sent"),
    "taken": N_("Call-back done"),
    "not_dead": N_("Only a failed e-mail can be sent again"),
    "not_dead_delivery": N_("Only a failed delivery can be sent again"),
    "deleted": N_("Deleted"),
    "key_revoked": N_("API key revoked: refused from now on"),
    "sos_acknowledged": N_("SOS acknowledged"),
    "sos_already": N_("This SOS was already acknowledged"),
    "language": N_("Language saved"),
}


# automatic refreshes (the board's rows, the SOS banner's poll): nobody at the keyboard, so they
# keep no session alive, and an ended session answers 401, not the sign-in page
PASSIVE = ("/board/rows", "/sos/live")


class NotSignedIn(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class Forbidden(Exception):
    """Shown as a 403 page; the message says which role is needed."""


class Missing(Exception):
    """Shown as a 404 page."""


class BadForm(Exception):
    """A POST without the session's CSRF token: 403, nothing done."""


def lifetimes(request: Request) -> Lifetimes:
    return Lifetimes.of(request.app.state.settings)


def current_viewer(request: Request, session: SessionDep) -> Viewer:
    # the board's automatic refresh is not someone at the keyboard: it keeps no session alive
    found = viewer_from_cookie(session, request.cookies.get(SESSION_COOKIE), lifetimes(request),
                               touch=not request.url.path.startswith(PASSIVE))
    if isinstance(found, str):
        raise NotSignedIn(found)
    request.state.language = found.language
    return found


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def checked_post(viewer: ViewerDep, csrf: Annotated[str, Form()] = "") -> Viewer:
    """Every state-changing form carries the session's token in a hidden `csrf` field."""
    if not tokens_match(csrf, viewer.csrf):
        raise BadForm()
    return viewer


PosterDep = Annotated[Viewer, Depends(checked_post)]


def planner(viewer: Viewer) -> Viewer:
    if not viewer.plans:
        raise Forbidden(N_("Managers and admins only: technicians see devices and health"))
    return viewer


def planner_view(viewer: ViewerDep) -> Viewer:
    return planner(viewer)


def planner_post(viewer: PosterDep) -> Viewer:
    return planner(viewer)


PlannerDep = Annotated[Viewer, Depends(planner_view)]
PlannerPostDep = Annotated[Viewer, Depends(planner_post)]


def organisation(session: Session, viewer: Viewer) -> Organisation | None:
    """The viewer's organisation; a user of no organisation works on the first one."""
    q = select(Organisation).order_by(Organisation.id)
    if viewer.organisation_id is not None:
        q = q.where(Organisation.id == viewer.organisation_id)
    return session.scalars(q.limit(1)).first()


def page(request: Request, name: str, viewer: Viewer | None, status_code: int = 200,
         **ctx) -> HTMLResponse:
    msg = MESSAGES.get(request.query_params.get("msg", ""))
    return templates.TemplateResponse(request, name, {"viewer": viewer, "flash": msg, **ctx},
                                      status_code=status_code)


def redirect(url: str, msg: str | None = None) -> RedirectResponse:
    if msg:
        url += ("&" if "?" in url else "?") + "msg=" + quote(msg)
    return RedirectResponse(url, status_code=303)


def install_handlers(app) -> None:
    @app.exception_handler(NotSignedIn)
    async def _to_login(request: Request, exc: NotSignedIn) -> Response:
        if request.url.path.startswith(PASSIVE):
            return Response(status_code=401)
        url = "/login?next=" + quote(request.url.path)
        if exc.why == SessionState.EXPIRED:
            url += "&expired=1"
        resp = RedirectResponse(url, status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return page(request, "error.html", None, 403, title=N_("Not allowed"),
                    message=str(exc))

    @app.exception_handler(Missing)
    async def _missing(request: Request, exc: Missing) -> Response:
        return page(request, "error.html", None, 404, title=N_("Not found"),
                    message=str(exc))

    @app.exception_handler(BadForm)
    async def _bad_form(request: Request, exc: BadForm) -> Response:
        return page(request, "error.html", None, 403, title=N_("Form refused"),
                    message=N_("This form is out of date or did not come from this console: "
                               "reload the page and try again"))
