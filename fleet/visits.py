"""Visits: every rule on a planned visit, shared by the API, the console, the CSV imports, the
series (fleet.visit_series) and the week views (docs/office.md, "One planning layer").

The rules: the client, the caregiver and the service exist in the visit's organisation; times
are aware and the end follows the start; a local time that does not exist (clocks change) is
refused; one client, one caregiver, one start is one visit (a cancelled one does not count); a
validated visit (or month) is locked. Each refusal is a PlanningError with the HTTP status the
API answers (the console shows its message on the form); nothing is written before every rule
has passed. The caller commits.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit, webhooks
from fleet.corrections import record_of
from fleet.directory import PlanningError, same_org
from fleet.models import Caregiver, Client, Organisation, Service, Visit
from fleet.validation import locked_visit

__all__ = ["PlanningError", "create", "update", "duplicate_of", "planned_keys", "local_instant",
           "check_times", "references"]

FIELDS = ("client_id", "caregiver_id", "service_id", "planned_start", "planned_end", "status")


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`day` at `at` in the agency's zone, as UTC; refused when clocks skip that time."""
    when = datetime.combine(day, at, tz)
    back = when.astimezone(timezone.utc).astimezone(tz)
    if (back.hour, back.minute) != (at.hour, at.minute):
        raise PlanningError(422, f"{at:%H:%M} does not exist on {day} (clocks change) · "
                                 "heure inexistante (changement d'heure)")
    return when.astimezone(timezone.utc)


def check_times(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise PlanningError(422, "give times with their UTC offset · précisez le fuseau")
    if end <= start:
        raise PlanningError(422, "the end must be after the start · la fin doit suivre le "
                                 "début")


def references(session: Session, org_id: int, client_id: int | None,
               caregiver_id: int | None, service_id: int | None) -> None:
    """The client, caregiver and service (each when given) belong to organisation `org_id`."""
    same_org(session, Client, client_id, org_id, "client", "usager")
    same_org(session, Caregiver, caregiver_id, org_id, "caregiver", "intervenant")
    same_org(session, Service, service_id, org_id, "service", "prestation")


def duplicate_of(session: Session, org_id: int, client_id: int, caregiver_id: int,
                 start: datetime, but: int | None = None) -> Visit | None:
    """The live visit with this client, caregiver and start, other than visit `but`."""
    q = select(Visit).where(Visit.organisation_id == org_id, Visit.status != "cancelled",
                            Visit.client_id == client_id, Visit.caregiver_id == caregiver_id,
                            Visit.planned_start == start)
    if but is not None:
        q = q.where(Visit.id != but)
    return session.scalars(q.order_by(Visit.id)).first()


def already_planned(visit: Visit) -> PlanningError:
    return PlanningError(409, f"already planned: visit {visit.id} · déjà planifiée "
                              f"(intervention {visit.id})")


def planned_keys(session: Session, org_id: int, lo: datetime, hi: datetime
                 ) -> dict[tuple[int, int, datetime], int]:
    """{(client, caregiver, start): visit id} of the live visits starting in [lo, hi): the
    duplicate rule for many rows at once (the CSV imports, a series' expansion)."""
    return {(v.client_id, v.caregiver_id, v.planned_start): v.id
            for v in session.scalars(select(Visit).where(
                Visit.organisation_id == org_id, Visit.status != "cancelled",
                Visit.planned_start >= lo, Visit.planned_start < hi))}


def _json(fields: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}


def create(session: Session, org: Organisation, *, client_id: int, caregiver_id: int,
           planned_start: datetime, planned_end: datetime, service_id: int | None = None,
           who: str, role: str | None = None, note: dict | None = None,
           series_id: int | None = None, series_day: date | None = None,
           audited: bool = True, emit: bool = True) -> Visit:
    """A new planned visit, every rule checked first; audited as `who` unless `audited` is
    False (an import or a series audits the whole batch once); its `visit.created` webhook
    queued unless `emit` is False (create_many queues the batch's at once)."""
    references(session, org.id, client_id, caregiver_id, service_id)
    check_times(planned_start, planned_end)
    clash = duplicate_of(session, org.id, client_id, caregiver_id, planned_start)
    if clash is not None:
        raise already_planned(clash)
    visit = Visit(organisation_id=org.id, client_id=client_id, caregiver_id=caregiver_id,
                  service_id=service_id, planned_start=planned_start, planned_end=planned_end,
                  series_id=series_id, series_day=series_day)
    session.add(visit)
    session.flush()
    if emit:
        webhooks.visit_created(session, visit)
    if audited:
        audit.record(session, who, "create", f"visit:{visit.id}", role=role,
                     detail={**(note or {}), **_json(
                         {"client_id": client_id, "caregiver_id": caregiver_id,
                          "service_id": service_id, "planned_start": planned_start,
                          "planned_end": planned_end})})
    return visit


def check_open(session: Session, visit: Visit) -> None:
    if locked_visit(session, visit, record_of(session, visit.id)):
        raise PlanningError(409, f"visit {visit.id} is validated: reopen it to change it · "
                                 "intervention validée : rouvrez-la pour la modifier")


def update(session: Session, visit: Visit, changes: dict, *, who: str,
           role: str | None = None, note: dict | None = None, action: str = "update") -> dict:
    """Apply `changes` (a subset of FIELDS) to `visit` once every rule passed; returns what
    really changed (audited when not empty)."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise PlanningError(422, f"unknown field(s) {', '.join(sorted(unknown))}")
    changes = {k: v for k, v in changes.items() if getattr(visit, k) != v}
    if not changes:
        return {}
    check_open(session, visit)
    nulls = sorted(k for k, v in changes.items() if v is None and k != "service_id")
    if nulls:
        raise PlanningError(422, f"{', '.join(nulls)} cannot be empty · obligatoire")
    references(session, visit.organisation_id, changes.get("client_id"),
               changes.get("caregiver_id"), changes.get("service_id"))
    after = {k: changes.get(k, getattr(visit, k)) for k in FIELDS}
    check_times(after["planned_start"], after["planned_end"])
    if after["status"] != "cancelled":
        clash = duplicate_of(session, visit.organisation_id, after["client_id"],
                             after["caregiver_id"], after["planned_start"], but=visit.id)
        if clash is not None:
            raise already_planned(clash)
    for k, v in changes.items():
        setattr(visit, k, v)
    session.flush()
    webhooks.visit_changed(session, visit, changes)  # visit.modified, or visit.cancelled
    audit.record(session, who, action, f"visit:{visit.id}", role=role,
                 detail={**(note or {}), **_json(changes)})
    return changes


def create_many(session: Session, org: Organisation, rows: Iterable[dict], *, who: str,
                role: str | None = None) -> list[Visit]:
    """The visits of an import's valid rows (`client_id`, `caregiver_id`, `service_id`,
    `start`, `end`), each through create(); the caller audits the import as a whole."""
    made = [create(session, org, client_id=v["client_id"], caregiver_id=v["caregiver_id"],
                   service_id=v["service_id"], planned_start=v["start"], planned_end=v["end"],
                   who=who, role=role, audited=False, emit=False) for v in rows]
    webhooks.visit_created(session, made)
    return made
