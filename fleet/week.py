"""A week of visits per caregiver or per client, the conflicts in it, and reassignment
(docs/office.md, "Week views and replacements"). Shared by the console and the API.

A conflict today is two live visits of one caregiver that overlap. `conflicts_for` is the one
place that says what a conflict is: the absences feature adds "the caregiver is absent" there,
and the week view, the reassignment check and the API all see it.

Reassigning changes each visit through fleet.visits.update (the lock and duplicate rules
hold), audited as "reassign"; the visits' updated_at makes the planning push
(fleet.push.ConfigPusher) recompute the configs of the homes' readers and the caregivers'
phones, whose version goes up when their content changes: they get it at the next push.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit, visits
from fleet.directory import PlanningError, same_org
from fleet.models import Absence, Caregiver, Organisation, Visit


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass
class Week:
    monday: date
    days: list[date]
    visits: list[Visit]
    by_day: dict[date, list[Visit]]
    conflicts: dict[int, list[str]] = field(default_factory=dict)


def week_of(session: Session, org: Organisation, day: date, *, caregiver_id: int | None = None,
            client_id: int | None = None) -> Week:
    """The week (Monday to Sunday, the agency's days) holding `day`, of one caregiver or one
    client, with each visit's conflicts."""
    tz = ZoneInfo(org.timezone)
    monday = monday_of(day)
    lo = datetime.combine(monday, time(0), tz)
    hi = datetime.combine(monday + timedelta(days=7), time(0), tz)
    q = select(Visit).where(Visit.organisation_id == org.id, Visit.planned_start >= lo,
                            Visit.planned_start < hi)
    if caregiver_id is not None:
        q = q.where(Visit.caregiver_id == caregiver_id)
    if client_id is not None:
        q = q.where(Visit.client_id == client_id)
    found = list(session.scalars(q.order_by(Visit.planned_start, Visit.id)))
    days = [monday + timedelta(days=i) for i in range(7)]
    by_day: dict[date, list[Visit]] = {d: [] for d in days}
    for v in found:
        by_day[v.planned_start.astimezone(tz).date()].append(v)
    return Week(monday, days, found, by_day, conflicts_for(session, org.id, found))


def _live(v: Visit) -> bool:
    return v.status != "cancelled"


def conflicts_for(session: Session, org_id: int, these: Iterable[Visit],
                  caregiver_id: int | None = None) -> dict[int, list[str]]:
    """{visit id: [what is wrong, EN · FR]} for the live visits in `these`: another live visit
    of the same caregiver (or of `caregiver_id`, when checking a reassignment) overlaps it.
    or the caregiver has an approved absence then (fleet.absences). One place says what a
    conflict is: the week view, the reassignment, the API and the CLI call it."""
    these = [v for v in these if _live(v)]
    if not these:
        return {}
    who = {caregiver_id} if caregiver_id is not None else {v.caregiver_id for v in these}
    lo = min(v.planned_start for v in these)
    hi = max(v.planned_end for v in these)
    others = session.scalars(select(Visit).where(
        Visit.organisation_id == org_id, Visit.caregiver_id.in_(who),
        Visit.status != "cancelled", Visit.planned_start < hi, Visit.planned_end > lo)).all()
    out: dict[int, list[str]] = {}
    for v in these:
        mine = caregiver_id if caregiver_id is not None else v.caregiver_id
        for o in others:
            if o.id == v.id or o.caregiver_id != mine:
                continue
            if o.planned_start < v.planned_end and v.planned_start < o.planned_end:
                out.setdefault(v.id, []).append(
                    f"overlaps visit {o.id} · chevauche l'intervention {o.id}")
    # the caregiver is away then: an approved absence (fleet.absences) covers the visit
    away = session.scalars(select(Absence).where(
        Absence.organisation_id == org_id, Absence.caregiver_id.in_(who),
        Absence.state == "approved", Absence.starts_at < hi, Absence.ends_at > lo)).all()
    for v in these:
        mine = caregiver_id if caregiver_id is not None else v.caregiver_id
        for a in away:
            if a.caregiver_id == mine and a.starts_at < v.planned_end \
                    and v.planned_start < a.ends_at:
                out.setdefault(v.id, []).append(
                    f"caregiver absent (absence {a.id}) · intervenant absent")
    return out


def reassign(session: Session, org: Organisation, chosen: list[Visit], to_caregiver_id: int,
             *, who: str, role: str | None = None, confirm: bool = False,
             note: dict | None = None) -> dict[int, list[str]]:
    """Give `chosen` (visits of this organisation) to caregiver `to_caregiver_id`. Conflicts
    in the new caregiver's planning are checked first: without `confirm` they refuse it all
    (409, listed); with it they are accepted and audited. Returns the conflicts accepted."""
    target = same_org(session, Caregiver, to_caregiver_id, org.id, "caregiver", "intervenant")
    if target is None:
        raise PlanningError(422, "choose a caregiver · choisissez un intervenant")
    moving = [v for v in chosen if _live(v) and v.caregiver_id != target.id]
    if not moving:
        raise PlanningError(422, "no visit to reassign: pick planned visits of another "
                                 "caregiver · aucune intervention à réattribuer")
    if any(v.organisation_id != org.id for v in moving):
        raise PlanningError(404, "visit not found · intervention introuvable")
    found = conflicts_for(session, org.id, moving, caregiver_id=target.id)
    if found and not confirm:
        listed = "; ".join(f"visit {vid}: {', '.join(why)}" for vid, why in found.items())
        raise PlanningError(409, f"{target.name} is not free: {listed}. Confirm to reassign "
                                 "anyway · intervenant non disponible : confirmez pour "
                                 "réattribuer quand même")
    for v in moving:
        visits.update(session, v, {"caregiver_id": target.id}, who=who, role=role,
                      note={**(note or {}), "conflicts": found.get(v.id, [])},
                      action="reassign")
    audit.record(session, who, "reassign", f"caregiver:{target.id}", role=role,
                 detail={**(note or {}), "visits": [v.id for v in moving],
                         "confirmed_conflicts": {str(k): w for k, w in found.items()}})
    return found
