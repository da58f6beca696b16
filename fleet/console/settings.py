"""The agency's settings page (/settings): time zone, retained-time rules, visit-alert
thresholds and on-call e-mails. Managers and admins; CSRF-checked; every change audited by
fleet.agency_settings, the layer `PATCH /api/v1/alert-settings` uses too."""
from __future__ import annotations

from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fleet import agency_settings
from fleet.console.auth import Viewer
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.i18n import N_
from fleet.models import Organisation

router = APIRouter(include_in_schema=False)

ROUNDING_LABELS = {
    "none": N_("none: the minute as clocked"),
    "nearest": N_("to the nearest step"),
    "planned": N_("the planned time, within the tolerance"),
}
OVERRUN_LABELS = {
    "bill": N_("billed as clocked"),
    "cap": N_("capped at the planned duration"),
}
_ZONES = sorted(available_timezones())


def _org(session, viewer: Viewer) -> Organisation:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    return org


def _form(request: Request, viewer: Viewer, org: Organisation, values: dict,
          error: str | None = None, field: str | None = None,
          status_code: int = 200) -> Response:
    return page(request, "settings.html", viewer, status_code, org=org, values=values,
                error=error, error_field=field, zones=_ZONES, rounding=ROUNDING_LABELS,
                overrun=OVERRUN_LABELS)


@router.get("/settings")
def settings_page(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    org = _org(session, viewer)
    values = agency_settings.read(session, org)
    values["oncall_emails"] = "\n".join(values["oncall_emails"])
    return _form(request, viewer, org, values)


@router.post("/settings")
async def save_settings(request: Request, session: SessionDep,
                        viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    form = await request.form()
    # the retention and phone-report limits are set through the API (not on this page yet)
    values = {f: str(form.get(f, "")) for f in agency_settings.FIELDS
              if f not in agency_settings.LIMIT_FIELDS}
    try:
        agency_settings.update(session, org, values, who=viewer.who, role=viewer.role)
    except agency_settings.SettingsProblem as e:
        session.rollback()
        return _form(request, viewer, org, values, str(e), e.field, 422)
    session.commit()
    return redirect("/settings", "saved")
