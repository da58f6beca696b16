"""The FastAPI application: `create_app(settings)`."""
from __future__ import annotations

import logging

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse

from fleet import caregiver, console
from fleet.api.deps import current_key
from fleet.api.routes import alerts, devices, directory, events, exports, funding, office, \
    updates, visits
from fleet.config import Settings
from fleet.db import make_engine, migrate, session_factory


def create_app(settings: Settings | None = None) -> FastAPI:
    """Migrate the database, then build the app. Every /api/v1 route needs an API key."""
    settings = settings or Settings()
    logging.getLogger("telegest").setLevel(settings.log_level.upper())
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    app = FastAPI(title="telegest fleet", version="0.1.0",
                  description="Home-care clock-in: planning, devices, clock events.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    auth = [Depends(current_key)]
    for module in (directory, devices, visits, events, alerts, updates, office, funding,
                   exports):
        app.include_router(module.router, prefix="/api/v1", dependencies=auth)
    app.include_router(devices.public_router, prefix="/api/v1")  # phone enrolment: a token

    console.install(app)  # the manager console: /login, /board, /planning, /devices, /audit
    caregiver.install(app)  # the phones: the caregiver app at /app/, its gateway at /gw/v1

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/board")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        return {"ok": True}

    return app
