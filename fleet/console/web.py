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

from fleet.api.deps import get_session
from fleet.console.auth import SESSION_COOKIE, Viewer, tokens_match, viewer_from_cookie
from fleet.console.sessions import Lifetimes, SessionState
from fleet.models import Organisation

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
SessionDep = Annotated[Session, Depends(get_session)]

# ?msg=<key> after a redirect: fixed texts only, never text from the URL
MESSAGES = {
    "saved": "Saved · Enregistré",
    "created": "Created · Créé",
    "already": "Already saved: this form was sent twice · Déjà enregistré : formulaire envoyé "
               "deux fois",
    "blocked": "Device declared lost or stolen: the broker refuses it, a wipe is queued · "
               "Appareil déclaré perdu ou volé : le broker le refuse, un effacement est en attente",
    "blocked_unenforced": "Device declared lost or stolen: the fleet refuses its clock-ins and a "
                          "wipe is queued, but this broker does not check logins (development "
                          "broker), so the device can still connect · Appareil déclaré perdu ou "
                          "volé : la flotte refuse ses pointages et un effacement est en attente, "
                          "mais ce broker ne contrôle pas les connexions (broker de "
                          "développement) : l'appareil peut encore s'y connecter",
    "imported": "Planning imported · Planning importé",
    "registered": "Device registered · Appareil enregistré",
    "invited": "Invitation sent by e-mail (valid 7 days) · Invitation envoyée par e-mail "
               "(valable 7 jours)",
    "disabled": "Account disabled: its sessions have ended · Compte désactivé : ses sessions "
                "sont fermées",
    "enabled": "Account enabled · Compte réactivé",
    "reset_sent": "Password-reset link sent by e-mail (valid 24 hours) · Lien de "
                  "réinitialisation envoyé par e-mail (valable 24 heures)",
    "welcome": "Welcome: your password is set · Bienvenue : votre mot de passe est enregistré",
    "issued": "Badge issued · Badge émis",
    "revoked": "Badge revoked: it no longer clocks in · Badge révoqué : il ne pointe plus",
    "restored": "Badge restored: it clocks in again · Badge rétabli : il pointe de nouveau",
    "replaced": "Badge replaced: the old one no longer clocks in · Badge remplacé : l'ancien ne "
                "pointe plus",
    "signed_out": "Signed out · Déconnecté",
    "signed_out_everywhere": "Signed out everywhere: every session of yours has ended · "
                             "Déconnecté partout : toutes vos sessions sont fermées",
    "password_changed": "Password changed: your other sessions have ended · Mot de passe "
                        "changé : vos autres sessions sont fermées",
    "corrected": "Correction saved · Correction enregistrée",
    "validated": "Visit validated · Intervention validée",
    "reopened": "Visit reopened · Intervention rouverte",
    "handled": "Anomaly marked handled · Anomalie traitée",
    "month_validated": "Month validated · Mois validé",
    "month_reopened": "Month reopened · Mois rouvert",
    "requeued": "Sent again: back in the queue · Renvoyé : de nouveau en attente",
    "sent": "Message sent · Message envoyé",
    "taken": "Call-back done · Rappel traité",
    "not_dead": "Only a failed e-mail can be sent again · Seul un envoi en échec peut être "
                "renvoyé",
    "not_dead_delivery": "Only a failed delivery can be sent again · Seul un envoi en échec "
                         "peut être renvoyé",
    "deleted": "Deleted · Supprimé",
    "key_revoked": "API key revoked: refused from now on · Clé d'API révoquée : refusée "
                   "désormais",
    "sos_acknowledged": "SOS acknowledged · SOS pris en compte",
    "sos_already": "This SOS was already acknowledged · Ce SOS était déjà pris en compte",
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
        raise Forbidden("Managers and admins only: technicians see devices and health · "
                        "Réservé aux gestionnaires et administrateurs")
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
        return page(request, "error.html", None, 403, title="Not allowed · Non autorisé",
                    message=str(exc))

    @app.exception_handler(Missing)
    async def _missing(request: Request, exc: Missing) -> Response:
        return page(request, "error.html", None, 404, title="Not found · Introuvable",
                    message=str(exc))

    @app.exception_handler(BadForm)
    async def _bad_form(request: Request, exc: BadForm) -> Response:
        return page(request, "error.html", None, 403, title="Form refused · Formulaire refusé",
                    message="This form is out of date or did not come from this console: "
                            "reload the page and try again · Formulaire périmé ou venu "
                            "d'ailleurs : rechargez la page et recommencez")
