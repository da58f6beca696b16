"""The agency's settings: time zone, retained-time rules and visit alerts
(fleet.agency_settings). The organisation is the key's; a key of no organisation names one."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException

from fleet import agency_settings
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, SessionDep
from fleet.api.schemas import AlertSettingsOut, AlertSettingsPatch

router = APIRouter(dependencies=[PLANNERS], tags=["alerts"])


@router.get("/alert-settings", response_model=AlertSettingsOut)
def get_settings(session: SessionDep, key: KeyDep, organisation_id: int | None = None) -> dict:
    org = data.org_for_write(session, key, organisation_id)
    return agency_settings.read(session, org)


@router.patch("/alert-settings", response_model=AlertSettingsOut)
def patch_settings(body: AlertSettingsPatch, session: SessionDep, key: KeyDep,
                   organisation_id: int | None = None) -> dict:
    """Change the fields sent; all are checked before any is written (422 names the field)."""
    org = data.org_for_write(session, key, organisation_id)
    try:
        agency_settings.update(session, org, body.model_dump(exclude_none=True),
                               who=data.who(key), role=key.role)
    except agency_settings.SettingsProblem as e:
        session.rollback()
        raise HTTPException(422, str(e)) from None
    session.commit()
    return agency_settings.read(session, org)
