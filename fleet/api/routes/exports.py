"""Exports (docs/exports.md): ESPPADOM DELIVERY, payroll and billing CSV, streamed.

Everything that would make the file wrong is checked before the response starts, and answered
with a 4xx naming it; the body is then streamed from its own session (the request's may be
closed before the last chunk leaves). Each export is recorded in the audit log: it carries
personal data out of the fleet."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, SessionDep
from fleet.exports import esppadom, tabular
from fleet.exports.rows import ExportError

router = APIRouter(tags=["exports"], dependencies=[PLANNERS])
From = Annotated[date, Query(alias="from", description="first local day, included")]
To = Annotated[date, Query(description="last local day, included")]


def _stream(request: Request, build: Callable[[Session], object], media: str
            ) -> StreamingResponse:
    session = request.app.state.sessions()
    try:
        export = build(session)
    except ExportError as e:
        session.close()
        raise HTTPException(e.status, e.message) from None
    except BaseException:
        session.close()
        raise

    def body() -> Iterator[bytes]:
        try:
            yield from export.chunks()
        finally:
            session.close()

    return StreamingResponse(body(), media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{export.filename}"'})


def _audit(session, key, org_id: int, what: str, detail: dict) -> None:
    data.audit(session, key, "export", f"organisation:{org_id}",
               {"export": what, **{k: (v.isoformat() if isinstance(v, date) else v)
                                   for k, v in detail.items()}})
    session.commit()


@router.get("/exports/esppadom-delivery")
def esppadom_delivery(request: Request, session: SessionDep, key: KeyDep, first: From,
                      to: To, funder: int | None = None,
                      organisation_id: int | None = None) -> StreamingResponse:
    """ESPPADOM DELIVERY 1.4 XML: one CrossIndustryDespatchAdvice per visit of the range that
    a funding plan covers (of `funder` only, when given)."""
    org = data.org_for_write(session, key, organisation_id)
    response = _stream(request, lambda s: esppadom.prepare(s, org.id, first, to, funder),
                       "application/xml")
    _audit(session, key, org.id, "esppadom-delivery", {"from": first, "to": to,
                                                       "funder": funder})
    return response


def _table(kind: str):
    def route(request: Request, session: SessionDep, key: KeyDep, first: From, to: To,
              dialect: Literal["csv", "excel-fr"] = "csv", funder: int | None = None,
              organisation_id: int | None = None) -> StreamingResponse:
        org = data.org_for_write(session, key, organisation_id)
        response = _stream(request, lambda s: tabular.prepare(s, org.id, kind, first, to,
                                                              dialect, funder),
                           "text/csv; charset=utf-8")
        _audit(session, key, org.id, kind, {"from": first, "to": to, "dialect": dialect,
                                            "funder": funder})
        return response
    route.__name__ = f"export_{kind}"
    return route


router.get("/exports/payroll", summary="Payroll CSV: retained hours per caregiver per day "
           "and ISO week, raw beside them, km and expenses")(_table("payroll"))
router.get("/exports/billing", summary="Billing CSV: hours per client and funding plan "
           "(funder, order line)")(_table("billing"))
