"""The month-end files from the console: /exports (a form) and /exports/file (the download).

Managers and admins only, as the API's exports. The same functions (fleet.exports): a refusal
(no SIRET, a funder without identifier, a range backwards) shows the form again with the
message, before any file starts; a download is streamed and recorded in the audit log."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from fleet import audit
from fleet.console.funding import _choices
from fleet.console.planning import _org
from fleet.console.web import PlannerDep, SessionDep, page
from fleet.exports import esppadom, tabular
from fleet.exports.rows import ExportError
from fleet.i18n import N_
from fleet.models import Funder
from fleet.types import plain_int

router = APIRouter(include_in_schema=False)
KINDS = {"esppadom": "ESPPADOM DELIVERY (XML)", "payroll": N_("Payroll (CSV)"),
         "billing": N_("Billing (CSV)")}


def _last_month(today: date) -> tuple[date, date]:
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def _form(request: Request, session, viewer, org, values: dict, error: str | None = None,
          status_code: int = 200) -> Response:
    return page(request, "exports.html", viewer, status_code, values=values, error=error,
                kinds=KINDS, funders=_choices(session, org, Funder), org=org)


@router.get("/exports")
def export_form(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    first, last = _last_month(datetime.now(ZoneInfo(org.timezone)).date())
    return _form(request, session, viewer, org, {"from": first.isoformat(),
                                                 "to": last.isoformat(), "kind": "esppadom",
                                                 "dialect": "csv", "funder": ""})


@router.get("/exports/file")
def export_file(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    values = {k: request.query_params.get(k, "") for k in ("kind", "from", "to", "funder",
                                                            "dialect")}
    try:
        kind = values["kind"] if values["kind"] in KINDS else "esppadom"
        try:
            first, last = date.fromisoformat(values["from"]), date.fromisoformat(values["to"])
        except ValueError:
            raise ExportError(422, N_("give both days as YYYY-MM-DD"))
        funder = plain_int(values["funder"])
        sessions = request.app.state.sessions
        own = sessions()  # the body streams after this request's session is closed
        try:
            if kind == "esppadom":
                export = esppadom.prepare(own, org.id, first, last, funder)
            else:
                export = tabular.prepare(own, org.id, kind, first, last,
                                         values["dialect"] or "csv",
                                         funder if kind == "billing" else None)
        except BaseException:
            own.close()
            raise
    except ExportError as e:
        return _form(request, session, viewer, org, values, error=e.message,
                     status_code=e.status if e.status != 404 else 422)
    audit.record(session, viewer.who, "export", f"organisation:{org.id}", role=viewer.role,
                 detail={"export": kind, "from": first.isoformat(), "to": last.isoformat(),
                         "funder": funder, "via": "console"})
    session.commit()

    def body():
        try:
            yield from export.chunks()
        finally:
            own.close()

    media = "application/xml" if kind == "esppadom" else "text/csv; charset=utf-8"
    return StreamingResponse(body(), media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{export.filename}"',
        "Cache-Control": "no-store"})
