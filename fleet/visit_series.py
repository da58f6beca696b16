"""Visit series: recurring visits (docs/office.md, "Recurring visits").

A series is an RFC 5545 RRULE (python-dateutil) from a first local day at a local time for a
duration. It is expanded into plain visits (fleet.visits.create, every rule checked) up to a
rolling horizon, `HORIZON_DAYS` ahead, by the worker's daily job and whenever the series
changes; expansion is idempotent (one visit per series and local day, a unique constraint) and
reckons in the agency's time zone, so a visit at 08:00 in Paris stays at 08:00 across clock
changes. Devices, matching and exports only ever see plain visits.

Edits: "this one" changes one visit; "this and following" splits the series at a day (the old
one ends the day before, a new one starts that day with the changes, and the old series' later
visits move to it). Cancelling one occurrence adds an exception (EXDATE) and cancels its
visit. Any refusal is a PlanningError and the caller rolls back: nothing is changed.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet import audit, visits
from fleet.directory import PlanningError
from fleet.models import Organisation, Visit, VisitSeries

HORIZON_DAYS = 56  # eight weeks of plain visits ahead
MAX_COUNT = 1000  # COUNT beyond this is a typing mistake (nearly four years of weekdays)
MAX_YEARS = 10  # UNTIL or an end more than this far from the start, likewise
MAX_DURATION_MIN = 24 * 60
FREQS = ("DAILY", "WEEKLY", "MONTHLY")
ALLOWED = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "WKST"}
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
FIELDS = ("client_id", "caregiver_id", "service_id", "at", "duration_min")


def _bad(message: str) -> PlanningError:
    return PlanningError(422, message)


def parse_rule(text: str) -> dict[str, str]:
    """An RRULE's parts, upper case, checked: only day-level rules (no time of day, which is
    the series' `at`), a known FREQ, COUNT or UNTIL (not both) within reason."""
    text = (text or "").strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text:
        raise _bad("the recurrence is empty: e.g. FREQ=WEEKLY;BYDAY=MO,WE,FR · récurrence vide")
    parts: dict[str, str] = {}
    for chunk in text.split(";"):
        name, eq, value = chunk.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not eq or not name or not value:
            raise _bad(f"malformed recurrence {text!r}: NAME=VALUE parts separated by ';' · "
                       "récurrence mal formée")
        if name not in ALLOWED:
            raise _bad(f"recurrence part {name} is not accepted here (use "
                       f"{', '.join(sorted(ALLOWED))}) · élément de récurrence refusé")
        if name in parts:
            raise _bad(f"recurrence part {name} given twice · élément répété")
        parts[name] = value
    if parts.get("FREQ") not in FREQS:
        raise _bad(f"FREQ must be one of {', '.join(FREQS)} · fréquence invalide")
    if "COUNT" in parts and "UNTIL" in parts:
        raise _bad("COUNT and UNTIL together: give one of them (RFC 5545) · l'un ou l'autre")
    if "COUNT" in parts and not (parts["COUNT"].isdigit() and 1 <= int(parts["COUNT"])
                                 <= MAX_COUNT):
        raise _bad(f"COUNT must be 1 to {MAX_COUNT} · nombre d'occurrences invalide")
    if "INTERVAL" in parts and not (parts["INTERVAL"].isdigit() and 1 <= int(parts["INTERVAL"])
                                    <= 52):
        raise _bad("INTERVAL must be 1 to 52 · intervalle invalide")
    if "UNTIL" in parts:
        _until(parts["UNTIL"])
    try:
        rrulestr("RRULE:" + unparse({**parts, **({"UNTIL": parts["UNTIL"][:8]}
                                                 if "UNTIL" in parts else {})}),
                 dtstart=datetime(2030, 1, 1))
    except (ValueError, TypeError) as e:
        raise _bad(f"malformed recurrence {text!r}: {e} · récurrence mal formée") from None
    return parts


def unparse(parts: dict[str, str]) -> str:
    order = ("FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "WKST", "COUNT", "UNTIL")
    return ";".join(f"{k}={parts[k]}" for k in order if k in parts)


def weekly_rule(days: list[str], interval: int = 1) -> str:
    """The console's form as an RRULE: these days (MO..SU) every `interval` weeks."""
    picked = [d for d in DAYS if d in {x.upper() for x in days}]
    if not picked:
        raise _bad("tick at least one day · cochez au moins un jour")
    return unparse({"FREQ": "WEEKLY", "INTERVAL": str(interval), "BYDAY": ",".join(picked)})


def read_at(text: str) -> time:
    try:
        at = time.fromisoformat((text or "").strip())
    except ValueError:
        raise _bad(f"{text!r} is not a time (HH:MM) · n'est pas une heure") from None
    return at.replace(second=0, microsecond=0)


def _until(value: str) -> date:
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        raise _bad(f"UNTIL={value} is not a date (YYYYMMDD) · date invalide") from None


def _rule(series: VisitSeries) -> rrule:
    parts = dict(parse_rule(series.rrule))
    if "UNTIL" in parts:  # a day: the naive local datetimes below end that day
        parts["UNTIL"] = _until(parts["UNTIL"]).strftime("%Y%m%dT235959")
    at = read_at(series.at)
    return rrulestr("RRULE:" + unparse(parts), dtstart=datetime.combine(series.starts_on, at))


def check(series: VisitSeries) -> None:
    """The series as a whole: a rule, a time, a duration and dates that make sense."""
    parts = parse_rule(series.rrule)
    series.rrule = unparse(parts)
    read_at(series.at)
    if not isinstance(series.duration_min, int) or not 0 < series.duration_min \
            <= MAX_DURATION_MIN:
        raise _bad(f"the duration is 1 to {MAX_DURATION_MIN} minutes · durée invalide")
    if not 2000 <= series.starts_on.year <= 2200:
        raise _bad(f"first day {series.starts_on} is out of range · premier jour invalide")
    far = series.starts_on + timedelta(days=round(365.25 * MAX_YEARS))
    if series.ends_on is not None:
        if series.ends_on < series.starts_on:
            raise _bad("the series ends before it starts · la fin précède le début")
        if series.ends_on > far:
            raise _bad(f"the series ends more than {MAX_YEARS} years after it starts · fin "
                       "trop lointaine")
    if "UNTIL" in parts:
        until = _until(parts["UNTIL"])
        if until < series.starts_on or until > far:
            raise _bad(f"UNTIL={parts['UNTIL']} is before the start or more than {MAX_YEARS} "
                       "years after it · date de fin invalide")
    if next(iter(days_of(series, series.starts_on, series.ends_on or far)), None) is None:
        raise _bad("this recurrence never happens between its start and its end · aucune "
                   "occurrence")


def days_of(series: VisitSeries, lo: date, hi: date) -> list[date]:
    """The series' local days in [lo, hi] (its end and exceptions applied)."""
    if series.ends_on is not None:
        hi = min(hi, series.ends_on)
    lo = max(lo, series.starts_on)
    if hi < lo:
        return []
    gone = set(series.exdates or [])
    return [d.date() for d in _rule(series).between(
        datetime.combine(lo, time(0)), datetime.combine(hi, time(23, 59, 59)), inc=True)
        if d.date().isoformat() not in gone]


def times_of(series: VisitSeries, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """(start, end) in UTC of the series' visit on local `day`."""
    start = visits.local_instant(day, read_at(series.at), tz)
    return start, start + timedelta(minutes=series.duration_min)


def _tz(session: Session, series: VisitSeries) -> ZoneInfo:
    return ZoneInfo(session.get(Organisation, series.organisation_id).timezone)


def expand(session: Session, series: VisitSeries, today: date, *, who: str,
           strict: bool = True, horizon_days: int = HORIZON_DAYS) -> list[Visit]:
    """The visits of `series` from `today` to the horizon that do not exist yet. `strict`
    (a person's change): a duplicate or a clock-change time is refused; otherwise (the daily
    job) such a day is left out and the rest is made."""
    org = session.get(Organisation, series.organisation_id)
    tz = ZoneInfo(org.timezone)
    until = today + timedelta(days=horizon_days - 1)
    have = set(session.scalars(select(Visit.series_day).where(Visit.series_id == series.id)))
    made = []
    for day in days_of(series, today, until):
        if day in have:
            continue
        try:
            start, end = times_of(series, day, tz)
            with session.begin_nested():
                visit = visits.create(session, org, client_id=series.client_id,
                                      caregiver_id=series.caregiver_id,
                                      service_id=series.service_id, planned_start=start,
                                      planned_end=end, who=who, series_id=series.id,
                                      series_day=day, audited=False)
        except PlanningError as e:
            if strict:
                raise PlanningError(e.status, f"{day}: {e.message}") from None
            continue
        except IntegrityError:  # another process made this day meanwhile
            continue
        made.append(visit)
    series.expanded_until = max(series.expanded_until or until, until)
    return made


def extend_all(session: Session, now: datetime, who: str = "fleet:series") -> int:
    """The daily job: every open series expanded up to its horizon (idempotent)."""
    made = 0
    for series in session.scalars(select(VisitSeries).order_by(VisitSeries.id)):
        today = now.astimezone(_tz(session, series)).date()
        if series.ends_on is not None and series.ends_on < today:
            continue
        made += len(expand(session, series, today, who=who, strict=False))
    return made


def _detail(series: VisitSeries) -> dict:
    return {"client_id": series.client_id, "caregiver_id": series.caregiver_id,
            "service_id": series.service_id, "rrule": series.rrule,
            "starts_on": series.starts_on.isoformat(),
            "ends_on": series.ends_on.isoformat() if series.ends_on else None,
            "at": series.at, "duration_min": series.duration_min}


def create(session: Session, org: Organisation, *, client_id: int, caregiver_id: int,
           rrule_text: str, starts_on: date, at: str, duration_min: int,
           ends_on: date | None = None, service_id: int | None = None, today: date,
           who: str, role: str | None = None, note: dict | None = None) -> VisitSeries:
    """A new series, checked, and its visits up to the horizon."""
    visits.references(session, org.id, client_id, caregiver_id, service_id)
    series = VisitSeries(organisation_id=org.id, client_id=client_id, caregiver_id=caregiver_id,
                         service_id=service_id, rrule=rrule_text, starts_on=starts_on,
                         ends_on=ends_on, at=read_at(at).strftime("%H:%M"),
                         duration_min=duration_min, exdates=[])
    check(series)
    session.add(series)
    session.flush()
    made = expand(session, series, today, who=who)
    audit.record(session, who, "create", f"visit_series:{series.id}", role=role,
                 detail={**(note or {}), **_detail(series), "visits": len(made)})
    return series


def occurrence(session: Session, series: VisitSeries, day: date) -> Visit | None:
    return session.scalars(select(Visit).where(Visit.series_id == series.id,
                                               Visit.series_day == day)).first()


def _is_day(series: VisitSeries, day: date) -> None:
    if not 2000 <= day.year <= 2200 or day not in days_of(series, day, day):
        raise PlanningError(404, f"series {series.id} has no visit on {day} · pas "
                                 "d'intervention ce jour-là")


def cancel_occurrence(session: Session, series: VisitSeries, day: date, *, who: str,
                      role: str | None = None, note: dict | None = None) -> Visit | None:
    """Take `day` out of the series (EXDATE) and cancel its visit if it was made."""
    _is_day(series, day)
    visit = occurrence(session, series, day)
    if visit is not None and visit.status != "cancelled":
        visits.update(session, visit, {"status": "cancelled"}, who=who, role=role, note=note)
    series.exdates = sorted({*(series.exdates or []), day.isoformat()})
    audit.record(session, who, "cancel_occurrence", f"visit_series:{series.id}", role=role,
                 detail={**(note or {}), "day": day.isoformat(),
                         "visit_id": visit.id if visit else None})
    return visit


def _clean(changes: dict) -> dict:
    unknown = set(changes) - set(FIELDS) - {"rrule"}
    if unknown:
        raise _bad(f"unknown field(s) {', '.join(sorted(unknown))}")
    if "at" in changes:
        changes["at"] = read_at(changes["at"]).strftime("%H:%M")
    return changes


def edit_this(session: Session, series: VisitSeries, day: date, changes: dict, *, who: str,
              role: str | None = None, note: dict | None = None) -> Visit:
    """Change the visit of `day` only (caregiver, client, service, time, duration)."""
    changes = _clean(dict(changes))
    if "rrule" in changes:
        raise _bad("the recurrence changes for 'following', not for one visit · la récurrence "
                   "se change pour « les suivantes »")
    _is_day(series, day)
    visit = occurrence(session, series, day)
    if visit is None:
        raise PlanningError(404, f"the visit of {day} is not made yet (beyond the horizon) · "
                                 "intervention pas encore créée")
    fields = {k: v for k, v in changes.items() if k in visits.FIELDS}
    if "at" in changes or "duration_min" in changes:
        tz = _tz(session, series)
        local = visit.planned_start.astimezone(tz)
        at = read_at(changes.get("at") or local.strftime("%H:%M"))
        minutes = changes.get("duration_min") or int(
            (visit.planned_end - visit.planned_start).total_seconds() // 60)
        start = visits.local_instant(day, at, tz)
        fields.update(planned_start=start, planned_end=start + timedelta(minutes=minutes))
    visits.update(session, visit, fields, who=who, role=role,
                  note={**(note or {}), "series_id": series.id, "scope": "this"})
    return visit


def split(session: Session, series: VisitSeries, day: date, changes: dict, *, today: date,
          who: str, role: str | None = None, note: dict | None = None) -> VisitSeries:
    """"This and following": `series` ends the day before `day` (from its first day: it is
    left empty, closed); a new series with `changes` starts on `day`. The old series' visits from `day` on move to the new one (changed) when
    the new rule keeps their day, else are cancelled; the new series is then expanded."""
    changes = _clean(dict(changes))
    _is_day(series, day)
    parts = parse_rule(changes.pop("rrule", series.rrule))
    if "COUNT" in parts and "rrule" not in changes:
        done = len(_rule(series).between(datetime.combine(series.starts_on, time(0)),
                                         datetime.combine(day, time(0)), inc=True))
        parts["COUNT"] = str(max(1, int(parts["COUNT"]) - done))
    old_end = series.ends_on
    new = VisitSeries(organisation_id=series.organisation_id, split_from_id=series.id,
                      rrule=unparse(parts), starts_on=day, ends_on=old_end,
                      exdates=[d for d in series.exdates or [] if d >= day.isoformat()],
                      **{k: changes.get(k, getattr(series, k)) for k in FIELDS})
    visits.references(session, series.organisation_id, new.client_id, new.caregiver_id,
                      new.service_id)
    check(new)
    series.ends_on = day - timedelta(days=1)
    series.exdates = [d for d in series.exdates or [] if d < day.isoformat()]
    session.add(new)
    session.flush()
    tz = _tz(session, series)
    keep = set(days_of(new, day, day + timedelta(days=HORIZON_DAYS * 4)))
    later = session.scalars(select(Visit).where(Visit.series_id == series.id,
                                                Visit.series_day >= day)
                            .order_by(Visit.series_day)).all()
    for visit in later:
        if visit.status != "planned":
            continue  # started, done or cancelled: history stays with the old series
        if visit.series_day in keep:
            start, end = times_of(new, visit.series_day, tz)
            visits.update(session, visit, {
                "client_id": new.client_id, "caregiver_id": new.caregiver_id,
                "service_id": new.service_id, "planned_start": start, "planned_end": end},
                who=who, role=role, note={"series_id": new.id, "scope": "following"})
            visit.series_id = new.id
        else:
            visits.update(session, visit, {"status": "cancelled"}, who=who, role=role,
                          note={"series_id": series.id, "scope": "following"})
    session.flush()
    expand(session, new, max(today, day), who=who)
    audit.record(session, who, "split", f"visit_series:{series.id}", role=role,
                 detail={**(note or {}), "from": day.isoformat(), "new_series": new.id,
                         **{k: v for k, v in _detail(new).items() if k != "starts_on"}})
    return new


def today_in(session: Session, org: Organisation, now: datetime | None = None) -> date:
    return (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(org.timezone)).date()
