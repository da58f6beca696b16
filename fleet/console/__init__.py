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
    from fleet.console import (account, badges, board, devices, exports, funding, imports,
                               login, month, outbox, planning, review, settings, sos, visits)
    from fleet.console.web import install_handlers

    # imports before /planning/{kind}
    for module in (login, account, board, imports, planning, devices, badges, settings, outbox,
                   funding, exports, visits, review, month, sos):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    install_handlers(app)
