"""Absences: the rules the API, the console and the device gateway all call.

A caregiver asks from the app (state `requested`); a manager approves or refuses it with a
reason, or the office records one directly (`approved` at once). Every change is audited. The
visits an approved absence covers are *to replace*: found by a query (`to_replace`), never
stored, so a visit reassigned to someone else or moved out of the period leaves the list by
itself. A period is whole days in the agency's time zone (first day 00:00 to the day after the
last), or from a time on the first day to a time on the last. Refusals are `AbsenceRefused`
with an HTTP status and a message in English and French; nothing is changed then.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from fleet import audit, webpush
from fleet.models import ABSENCE_KINDS, Absence, Caregiver, Organisation, Visit
from fleet.types import utcnow

KINDS = {"leave": ("leave", "congé"), "sick": ("sick leave", "maladie"),
         "training": ("training", "formation"), "other": ("other", "autre")}
assert tuple(KINDS) == ABSENCE_KINDS
OPEN = ("requested", "approved")  # the states that hold the caregiver's time
MAX_DAYS = 366
NOTE_MAX = REASON_MAX = 500


class AbsenceRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Period:
    starts_at: datetime
    ends_at: datetime
    all_day: bool


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    when = datetime.combine(day, at, tz)
    if when.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != when.replace(
            tzinfo=None):
        raise AbsenceRefused(422, f"{at:%H:%M} does not exist on {day} (clocks change) · "
                                  "heure inexistante (changement d'heure)")
    return when.astimezone(timezone.utc)


def period(tz_name: str, first_day: date, last_day: date, start_time: time | None = None,
           end_time: time | None = None) -> Period:
    """The UTC period of an absence given as the agency's local days (and times)."""
    if (start_time is None) != (end_time is None):
        raise AbsenceRefused(422, "give both times or neither (whole days) · indiquez les deux "
                                  "heures ou aucune (journées entières)")
    if last_day < first_day:
        raise AbsenceRefused(422, "the last day is before the first · le dernier jour précède "
                                  "le premier")
    if (last_day - first_day).days >= MAX_DAYS:
        raise AbsenceRefused(422, f"at most {MAX_DAYS} days at once · au plus {MAX_DAYS} jours "
                                  "d'un coup")
    tz = ZoneInfo(tz_name)
    if start_time is None or end_time is None:
        return Period(_local(first_day, time(0), tz),
                      _local(last_day + timedelta(days=1), time(0), tz), True)
    start, end = _local(first_day, start_time, tz), _local(last_day, end_time, tz)
    if end <= start:
        raise AbsenceRefused(422, "the end is not after the start · la fin ne suit pas le début")
    return Period(start, end, False)


def _text(value: str, limit: int, what: str) -> str:
    value = (value or "").strip()
    if len(value) > limit:
        raise AbsenceRefused(422, f"{what[0]} over {limit} characters · {what[1]} de plus de "
                                  f"{limit} caractères")
    return value


def overlapping(session: Session, caregiver_id: int, starts_at: datetime, ends_at: datetime,
                but: int | None = None) -> Absence | None:
    q = select(Absence).where(Absence.caregiver_id == caregiver_id, Absence.state.in_(OPEN),
                              Absence.starts_at < ends_at, Absence.ends_at > starts_at)
    if but is not None:
        q = q.where(Absence.id != but)
    return session.scalars(q.order_by(Absence.starts_at)).first()


def create(session: Session, caregiver: Caregiver, kind: str, when: Period, note: str, *,
           who: str, role: str, approved: bool = False, request_key: str | None = None,
           organisation_id: int | None = None, form_id: str | None = None) -> Absence:
    """A new absence of `caregiver`: `requested` (the app), or `approved` at once when the
    office records it. `organisation_id`: the caller's agency, when it has one. A phone's
    request sent again with the same `request_key` gives back the first one, unchanged; a
    console form's `form_id` goes in the audit entry (fleet.console.forms)."""
    if organisation_id is not None and caregiver.organisation_id != organisation_id:
        raise AbsenceRefused(404, f"caregiver {caregiver.id} not found · intervenant introuvable")
    if request_key:
        earlier = session.scalars(select(Absence).where(
            Absence.caregiver_id == caregiver.id, Absence.request_key == request_key)).first()
        if earlier is not None:
            return earlier
    if kind not in KINDS:
        raise AbsenceRefused(422, f"kind must be one of {', '.join(KINDS)} · type inconnu")
    note = _text(note, NOTE_MAX, ("note", "note"))
    clash = overlapping(session, caregiver.id, when.starts_at, when.ends_at)
    if clash is not None:
        raise AbsenceRefused(409, f"overlaps absence {clash.id} ({clash.state}) of this "
                                  f"caregiver · chevauche l'absence {clash.id} déjà "
                                  f"{'demandée' if clash.state == 'requested' else 'acceptée'}")
    absence = Absence(organisation_id=caregiver.organisation_id, caregiver_id=caregiver.id,
                      kind=kind, starts_at=when.starts_at, ends_at=when.ends_at,
                      all_day=when.all_day, note=note, request_key=request_key or None,
                      requested_by=who[:200], state="approved" if approved else "requested")
    if approved:
        absence.decided_by, absence.decided_at = who[:200], utcnow()
    session.add(absence)
    session.flush()
    audit.record(session, who, "absence_record" if approved else "absence_request",
                 f"absence:{absence.id}", role=role, detail={
                     "caregiver_id": caregiver.id, "kind": kind, "all_day": when.all_day,
                     "starts_at": when.starts_at.isoformat(),
                     "ends_at": when.ends_at.isoformat(),
                     **({"form_id": form_id} if form_id else {})})
    return absence


def _scoped(absence: Absence, organisation_id: int | None) -> None:
    if organisation_id is not None and absence.organisation_id != organisation_id:
        raise AbsenceRefused(404, f"absence {absence.id} not found · absence introuvable")


def decide(session: Session, absence: Absence, approve: bool, reason: str, *, who: str,
           role: str, organisation_id: int | None = None) -> Absence:
    """Approve or refuse a requested absence; a refusal needs its reason (the caregiver reads
    it in the app)."""
    _scoped(absence, organisation_id)
    reason = _text(reason, REASON_MAX, ("reason", "motif"))
    if absence.state != "requested":
        raise AbsenceRefused(409, f"absence {absence.id} is {absence.state}, not requested: "
                                  "nothing to decide · plus rien à décider")
    if not approve and not reason:
        raise AbsenceRefused(422, "a refusal needs its reason · un refus doit être motivé")
    absence.state = "approved" if approve else "refused"
    absence.decided_by, absence.decided_at = who[:200], utcnow()
    absence.reason = reason or None
    audit.record(session, who, "absence_approve" if approve else "absence_refuse",
                 f"absence:{absence.id}", role=role, why=reason or None,
                 detail={"caregiver_id": absence.caregiver_id,
                         "visits_covered": len(covered_visits(session, absence))})
    _announce(session, absence)
    return absence


def _announce(session: Session, absence: Absence) -> None:
    """The caregiver's phones hear of the decision by Web Push (the app's absences screen shows
    it at the next sync anyway); French, as the app. A refusal says why."""
    days = as_dict(absence, organisation_tz(session, absence.organisation_id))
    first, last = (date.fromisoformat(days[k]).strftime("%d/%m") for k in ("first_day",
                                                                            "last_day"))
    when = f"du {first}" if first == last else f"du {first} au {last}"
    if absence.state == "approved":
        title, body = "Absence acceptée", f"Votre absence {when} est acceptée."
    else:
        title, body = "Absence refusée", f"Votre absence {when} est refusée : {absence.reason}"
    webpush.notify_caregiver(session, absence.caregiver_id, "absence", title, body,
                             "/app/#/absences", dedupe=f"absence:{absence.id}:{absence.state}")


def cancel(session: Session, absence: Absence, reason: str, *, who: str, role: str,
           organisation_id: int | None = None) -> Absence:
    """Cancel a requested or approved absence (its visits are no longer to replace)."""
    _scoped(absence, organisation_id)
    reason = _text(reason, REASON_MAX, ("reason", "motif"))
    if absence.state not in OPEN:
        raise AbsenceRefused(409, f"absence {absence.id} is already {absence.state} · déjà "
                                  "close")
    before = absence.state
    absence.state = "cancelled"
    absence.decided_by, absence.decided_at = who[:200], utcnow()
    absence.reason = reason or absence.reason
    audit.record(session, who, "absence_cancel", f"absence:{absence.id}", role=role,
                 why=reason or None, detail={"before": before})
    return absence


def covered_visits(session: Session, absence: Absence) -> list[Visit]:
    """The caregiver's visits, not cancelled, that the absence's period touches."""
    return list(session.scalars(select(Visit).where(
        Visit.caregiver_id == absence.caregiver_id, Visit.status != "cancelled",
        Visit.planned_start < absence.ends_at, Visit.planned_end > absence.starts_at)
        .order_by(Visit.planned_start, Visit.id)))


def to_replace_query(organisation_id: int | None = None) -> Select:
    """(Visit, Absence) rows: planned visits whose caregiver is away, approved, then."""
    q = select(Visit, Absence).join(Absence, and_(
        Absence.caregiver_id == Visit.caregiver_id, Absence.state == "approved",
        Absence.starts_at < Visit.planned_end, Absence.ends_at > Visit.planned_start)).where(
        Visit.status == "planned").order_by(Visit.planned_start, Visit.id, Absence.id)
    return q if organisation_id is None else q.where(Visit.organisation_id == organisation_id)


def to_replace(session: Session, organisation_id: int | None, since: datetime | None = None,
               until: datetime | None = None) -> list[tuple[Visit, Absence]]:
    """The visits the office must reassign, each once, with the absence that empties it."""
    q = to_replace_query(organisation_id)
    if since is not None:
        q = q.where(Visit.planned_end > since)
    if until is not None:
        q = q.where(Visit.planned_start < until)
    seen: dict[int, tuple[Visit, Absence]] = {}
    for visit, absence in session.execute(q):
        seen.setdefault(visit.id, (visit, absence))
    return list(seen.values())


def to_replace_ids(session: Session, visit_ids: list[int]) -> dict[int, int]:
    """{visit id: absence id} for those of `visit_ids` to replace (the planning's marker)."""
    if not visit_ids:
        return {}
    out: dict[int, int] = {}
    for visit, absence in session.execute(to_replace_query().where(Visit.id.in_(visit_ids))):
        out.setdefault(visit.id, absence.id)
    return out


def organisation_tz(session: Session, organisation_id: int) -> str:
    org = session.get(Organisation, organisation_id)
    return org.timezone if org else "Europe/Paris"


def as_dict(absence: Absence, tz_name: str) -> dict:
    """The absence as the API and the gateway give it: UTC times, and the agency's local days
    so a screen need not redo the time-zone arithmetic."""
    tz = ZoneInfo(tz_name)
    start = absence.starts_at.astimezone(tz)
    end = absence.ends_at.astimezone(tz)
    last = (end - timedelta(days=1)).date() if absence.all_day else end.date()
    return {"id": absence.id, "caregiver_id": absence.caregiver_id, "kind": absence.kind,
            "state": absence.state, "all_day": absence.all_day,
            "starts_at": absence.starts_at.isoformat(), "ends_at": absence.ends_at.isoformat(),
            "first_day": start.date().isoformat(), "last_day": last.isoformat(),
            "start_time": None if absence.all_day else start.strftime("%H:%M"),
            "end_time": None if absence.all_day else end.strftime("%H:%M"),
            "note": absence.note, "reason": absence.reason,
            "requested_by": absence.requested_by,
            "created_at": absence.created_at.isoformat(),
            "decided_by": absence.decided_by,
            "decided_at": absence.decided_at.isoformat() if absence.decided_at else None}
