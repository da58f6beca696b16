"""Import of a planning from a CSV file (docs/api.md, "Planning import").

Columns: client, caregiver, service (may be empty), date, start, end; French headers (usager,
intervenant, prestation, début, fin) are accepted too, as are `;` separators and files saved
by Excel in Windows-1252. Each bad row gets `{row, column, message}` errors; good rows are
returned ready to insert.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import visits
from fleet.directory import PlanningError
from fleet.models import Caregiver, Client, Organisation, Service
from fleet.types import plain_int

ALIASES = {"client": "client", "usager": "client", "beneficiaire": "client",
           "caregiver": "caregiver", "intervenant": "caregiver", "service": "service",
           "prestation": "service", "date": "date", "start": "start", "debut": "start",
           "début": "start", "end": "end", "fin": "end"}
REQUIRED = ("client", "caregiver", "date", "start", "end")
_TIME = re.compile(r"^(\d{1,2})[:hH](\d{2})$")


class ImportFileError(ValueError):
    """The file as a whole cannot be read (no header, missing columns)."""

    def __init__(self, errors: list[dict]) -> None:
        super().__init__(errors[0]["message"])
        self.errors = errors


@dataclass
class ImportResult:
    encoding: str
    delimiter: str
    rows: int = 0
    errors: list[dict] = field(default_factory=list)
    visits: list[dict] = field(default_factory=list)  # row, ids, names, UTC start/end


def decode(data: bytes) -> tuple[str, str]:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding), "utf-8" if encoding == "utf-8-sig" else encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def _parse_date(text: str) -> date:
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD or DD/MM/YYYY")


def _parse_time(text: str) -> time:
    m = _TIME.match(text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise ValueError(f"{text!r} is not a time: use HH:MM")
    return time(int(m[1]), int(m[2]))


def _local(day: date, t: time, tz: ZoneInfo) -> datetime:
    try:
        return visits.local_instant(day, t, tz)
    except PlanningError as e:
        raise ValueError(e.message) from None


class Names:
    """Find a client, caregiver or service by id, name or code, case-insensitively."""

    def __init__(self, things, *attrs: str) -> None:
        self.by_id = {t.id: t for t in things}
        self.by_key: dict[str, list] = {}
        for t in things:
            for a in attrs:
                self.by_key.setdefault(getattr(t, a).strip().casefold(), []).append(t)

    def find(self, text: str, what: str):
        if plain_int(text) in self.by_id:
            return self.by_id[plain_int(text)]
        found = {t.id: t for t in self.by_key.get(text.casefold(), [])}
        if not found:
            raise ValueError(f"unknown {what} {text!r}")
        if len(found) > 1:
            raise ValueError(f"several {what}s are named {text!r}: use the id")
        return next(iter(found.values()))


def _lines(text: str, delimiter: str) -> Iterator[list[str]]:
    try:
        yield from csv.reader(io.StringIO(text), delimiter=delimiter)
    except csv.Error as e:  # a stray quote, a NUL: the file as a whole cannot be read
        raise ImportFileError([{"row": None, "column": None,
                                "message": f"not a readable CSV file: {e}"}]) from None


def read_rows(data: bytes, aliases: dict[str, str], required: tuple[str, ...]
              ) -> tuple[str, str, Iterator[tuple[int, dict[str, str]]]]:
    """A CSV file's encoding, delimiter (`;`, `,` or tab, the header's commonest) and its
    non-blank rows as `(row number, {column: stripped value})`, columns named by `aliases`.
    ImportFileError for a file that cannot be read as a whole: empty, a `required` column
    missing, or not CSV (raised while the rows are read). The home points import reads
    its files this way too (fleet.client_points)."""
    text, encoding = decode(data)
    # a lone CR is an old Mac line end: csv refuses it inside a field, so read it as one
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # decimal commas need `;` between cells: the header tells which one the file uses
    delimiter = max((";", ",", "\t"), key=text.split("\n", 1)[0].count)
    lines = _lines(text, delimiter)
    header = next(lines, None)
    if not header:
        raise ImportFileError([{"row": 1, "column": None, "message": "the file is empty"}])
    columns = [aliases.get(h.strip().casefold(), h.strip().casefold()) for h in header]
    missing = [c for c in required if c not in columns]
    if missing:
        raise ImportFileError([{"row": 1, "column": c, "message": f"missing column {c!r}"}
                               for c in missing])
    rows = ((number, {c: (values[i].strip() if i < len(values) else "")
                      for i, c in enumerate(columns)})
            for number, values in enumerate(lines, start=2) if any(v.strip() for v in values))
    return encoding, delimiter, rows


def parse_planning(session: Session, org: Organisation, data: bytes) -> ImportResult:
    encoding, delimiter, rows = read_rows(data, ALIASES, REQUIRED)
    result = ImportResult(encoding=encoding, delimiter=delimiter)
    tz = ZoneInfo(org.timezone)
    clients = Names(session.scalars(select(Client).where(
        Client.organisation_id == org.id, Client.active)).all(), "name")
    caregivers = Names(session.scalars(select(Caregiver).where(
        Caregiver.organisation_id == org.id, Caregiver.active)).all(), "name")
    services = Names(session.scalars(select(Service).where(
        Service.organisation_id == org.id)).all(), "name", "code")
    seen: dict[tuple, int] = {}
    for number, row in rows:
        result.rows += 1
        errors = _check_row(number, row, clients, caregivers, services, tz)
        if isinstance(errors, list):
            result.errors.extend(errors)
            continue
        key = (errors["client_id"], errors["caregiver_id"], errors["start"])
        if key in seen:
            result.errors.append({"row": number, "column": None,
                                  "message": f"same visit as row {seen[key]}"})
            continue
        seen[key] = number
        result.visits.append(errors)
    _drop_already_planned(session, org, result)
    return result


def _check_row(number: int, row: dict, clients: Names, caregivers: Names, services: Names,
               tz: ZoneInfo) -> dict | list[dict]:
    errors, out = [], {"row": number}

    def attempt(column: str, fn):
        if not row.get(column) and column != "service":
            errors.append({"row": number, "column": column, "message": f"{column} is empty"})
            return None
        try:
            return fn(row.get(column, ""))
        except ValueError as e:
            errors.append({"row": number, "column": column, "message": str(e)})
            return None

    client = attempt("client", lambda v: clients.find(v, "client"))
    caregiver = attempt("caregiver", lambda v: caregivers.find(v, "caregiver"))
    service = attempt("service", lambda v: services.find(v, "service") if v else None)
    day = attempt("date", _parse_date)
    start_t = attempt("start", _parse_time)
    end_t = attempt("end", _parse_time)
    start = end = None
    if day and start_t:
        start = attempt("start", lambda _: _local(day, start_t, tz))
    if day and end_t:
        end = attempt("end", lambda _: _local(day, end_t, tz))
    if start and end and end <= start:
        errors.append({"row": number, "column": "end",
                       "message": f"end {row['end']} is not after start {row['start']}"})
    if errors:
        return errors
    out.update(client_id=client.id, client=client.name, caregiver_id=caregiver.id,
               caregiver=caregiver.name, service_id=service.id if service else None,
               service=service.code if service else None, start=start, end=end)
    return out


def _drop_already_planned(session: Session, org: Organisation, result: ImportResult) -> None:
    if not result.visits:
        return
    lo = min(v["start"] for v in result.visits)
    hi = max(v["start"] for v in result.visits) + timedelta(seconds=1)
    planned = visits.planned_keys(session, org.id, lo, hi)
    keep = []
    for v in result.visits:
        existing = planned.get((v["client_id"], v["caregiver_id"], v["start"]))
        if existing:
            result.errors.append({"row": v["row"], "column": None,
                                  "message": f"already planned (visit {existing})"})
        else:
            keep.append(v)
    result.visits = keep
    result.errors.sort(key=lambda e: e["row"])
