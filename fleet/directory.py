"""The agency's directory: the rules on organisations, clients, caregivers and services that
the API, the console and the imports share (docs/office.md, "One planning layer").

Each refusal is a PlanningError carrying the HTTP status the API answers (404, 409, 422) and
a message in English and French that the console shows on its form. The caller commits.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import Service


class PlanningError(Exception):
    """Refused: `status` is the HTTP status the API answers; nothing was changed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def same_org(session: Session, model, id_: int | None, org_id: int, what: str,
             quoi: str | None = None):
    """The `model` row `id_` when it belongs to organisation `org_id` (None when no id)."""
    if id_ is None:
        return None
    obj = session.get(model, id_)
    if obj is None or obj.organisation_id != org_id:
        raise PlanningError(422, f"{what} {id_} not found in organisation {org_id} · "
                                 f"{quoi or what} introuvable")
    return obj


def check_timezone(name: str | None) -> None:
    """An IANA zone name (Europe/Paris); None is no change."""
    if name is None:
        return
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PlanningError(422, f"unknown time zone {name!r} · fuseau horaire inconnu") \
            from None


def check_name(name: str | None, what: str = "name · nom") -> str:
    name = (name or "").strip()
    if not name:
        raise PlanningError(422, f"{what}: required · obligatoire")
    return name


def check_point(lat: float | None, lon: float | None) -> None:
    """A client's home point is both coordinates or neither."""
    if (lat is None) != (lon is None):
        raise PlanningError(422, "Home latitude and longitude go together · latitude et "
                                 "longitude vont ensemble")


def check_service_code(session: Session, org_id: int, code: str,
                       but: int | None = None) -> str:
    """A service code, required and unique in its organisation."""
    code = check_name(code, "code")
    q = select(Service.id).where(Service.organisation_id == org_id, Service.code == code)
    if but is not None:
        q = q.where(Service.id != but)
    with session.no_autoflush:
        taken = session.scalar(q)
    if taken is not None:
        raise PlanningError(409, f"service code {code} is already used · Ce code existe déjà")
    return code
