"""The caregiver app: an installable web app served by the fleet at /app/.

Plain HTML, CSS and one small script (no framework, no build step): enrolment with the
console's one-time token, today's and the week's planning, visit details, the client's record,
clock-in and out by NFC (Web NFC), QR code or by hand, km / expenses / comments and the
end-of-visit report, the SOS and Web Push (static/sos.js). Offline first: the shell is cached by a service worker, the planning and
the clock events live in IndexedDB, and events go to the device gateway (/gw/v1, fleet.gateway)
with the exactly-once protocol of docs/protocol.md. See docs/caregiver-app.md.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

# a new version renames the service worker's cache, so installed phones take the new shell
APP_VERSION = "0.1.5"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
# what the service worker keeps for offline use (the shell); planning and events are in IndexedDB
SHELL = ["/app/", "/app/static/app.js", "/app/static/sos.js", "/app/static/app.css",
         "/app/manifest.webmanifest",
         "/app/static/icon.svg", "/app/static/icon-192.png", "/app/static/icon-512.png",
         "/app/static/absence.js", "/app/static/absence.css",
         "/app/static/inbox.js", "/app/static/inbox.css"]


@router.get("/app")
def app_root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=308)


@router.get("/app/")
@router.get("/app/enrol")
def shell(request: Request) -> Response:
    """The one page; the script shows enrolment, planning, visit... by the URL's hash."""
    return templates.TemplateResponse(request, "app.html", {"version": APP_VERSION},
                                      headers={"Cache-Control": "no-cache"})


@router.get("/app/manifest.webmanifest")
def manifest(request: Request) -> Response:
    return templates.TemplateResponse(request, "manifest.webmanifest", {},
                                      media_type="application/manifest+json")


@router.get("/app/sw.js")
def service_worker(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "sw.js", {"version": APP_VERSION, "shell": SHELL},
        media_type="text/javascript", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """The phone side of the fleet: the app at /app/ and the device gateway it calls."""
    from fleet import gateway

    gateway.install(app)
    app.include_router(router)
    app.mount("/app/static", StaticFiles(directory=str(HERE / "static")), name="caregiver")
