"""The manager console: server-rendered pages over the fleet's data functions.

Sign-in with roles (fleet.console.auth), today's board, planning, CSV import, devices, badges,
the audit log, and the office side: visits, the review list and the month's validation. `install(app)` mounts it all on the API's FastAPI app; see docs/console.md.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"


def install(app: FastAPI) -> None:
    from fleet.console import (absences, account, badges, board, cards, client_record, devices,
                               exports, funding, imports, integrations, login, messages, month,
                               outbox, planning, review, series, settings, sos, staff, visits,
                               week)
    from fleet.console.web import install_handlers

    # imports, client_record, series and week before /planning/{kind}
    for module in (login, account, board, imports, client_record, series, week, planning,
                   devices, badges, settings, outbox, funding, exports, visits, review, month,
                   staff, absences, cards, integrations, messages, sos):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    install_handlers(app)
