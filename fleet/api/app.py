"""The FastAPI application: `create_app(settings)`."""
from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.exc import DataError, StatementError

from fleet import caregiver, console, quotas
from fleet.api.deps import current_key
from fleet.api.routes import (absences, agency, alerts, cards, client_record, devices,
                               directory, events, exports, funding, messaging, office, series,
                               sos, updates, visits, webhooks)
from fleet.config import Settings
from fleet.db import make_engine, prepare, session_factory
from fleet.web.headers import SecurityHeaders


def create_app(settings: Settings | None = None) -> FastAPI:
    """Migrate the database (or, logged in as the service role, check it is migrated: see
    fleet.db.prepare), then build the app. Every /api/v1 route needs an API key."""
    settings = settings or Settings()
    logging.getLogger("telegest").setLevel(settings.log_level.upper())
    prepare(settings.database_url)
    engine = make_engine(settings.database_url)
    app = FastAPI(title="telegest fleet", version="0.1.0",
                  description="Home-care clock-in: planning, devices, clock events.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.quota_counter = (quotas.RedisCounter(settings.quota_redis_url)
                               if settings.quota_redis_url else None)
    auth = [Depends(current_key)]
    for module in (directory, client_record, devices, visits, series, events, alerts, updates,
                   office, funding, exports, agency, absences, cards, webhooks, messaging,
                   sos):
        app.include_router(module.router, prefix="/api/v1", dependencies=auth)
    app.include_router(devices.public_router, prefix="/api/v1")  # phone enrolment: a token

    console.install(app)  # the manager console: /login, /board, /planning, /devices, /audit
    caregiver.install(app)  # the phones: the caregiver app at /app/, its gateway at /gw/v1

    install_range_errors(app)
    install_validation_errors(app)
    app.add_middleware(SecurityHeaders)  # CSP, nosniff, no framing, HSTS over https
    app.add_middleware(quotas.RateLimitHeaders)  # X-RateLimit-* of the API key's daily quota
    logging.getLogger("telegest.api").info(
        "links handed out (enrolment QR codes, e-mails) start with %s%s", settings.public_url,
        "" if settings.public_url_configured else " (TELEGEST_PUBLIC_URL is not set: the "
        "default, reachable from this machine only)")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/board")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        return {"ok": True}

    return app


def install_validation_errors(app: FastAPI) -> None:
    """FastAPI's 422, except that a NaN or an infinity in the request (Python's json reads
    them) is named as text: echoed as a number, the answer itself failed to encode and the
    caller got a 500 (found with a client's `lat`, issue #11)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        return JSONResponse({"detail": _finite(jsonable_encoder(errors))}, status_code=422)

    app.add_exception_handler(RequestValidationError, handler)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _out_of_range(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None)
    return isinstance(exc, (OverflowError, DataError)) or isinstance(orig, OverflowError)


def install_range_errors(app: FastAPI) -> None:
    """An id, offset or date the database cannot hold (an integer past 64 bits on SQLite, past
    32 bits in a PostgreSQL INTEGER column, a year 10000) is the caller's error: 422 for the
    API and the gateway, 404 for a page, never a 500. Found by Schemathesis (issue #14)."""

    async def handler(request: Request, exc: Exception):
        if not _out_of_range(exc):
            raise exc
        logging.getLogger("telegest.api").info("%s %s: value out of range (%s)",
                                               request.method, request.url.path,
                                               type(exc).__name__)
        if request.url.path.startswith(("/api/", "/gw/")):
            return JSONResponse({"detail": "a number or a date in the request is out of "
                                 "range"}, status_code=422)
        from fleet.console.web import page
        return page(request, "error.html", None, 404, title="Not found · Introuvable",
                    message="This address names nothing that exists · Cette adresse ne "
                            "désigne rien qui existe")

    for kind in (OverflowError, DataError, StatementError):
        app.add_exception_handler(kind, handler)
