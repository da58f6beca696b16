"""Payroll and billing CSV, streamed (docs/exports.md).

Payroll: per caregiver, one row per local day worked and one per ISO week (the days of the range
in that week), with the visits, raw and retained hours, km and expenses. Billing: per client,
one row per funding plan (funder and order line) and one for visits no plan covers, with raw
and retained hours. Both end with `weakest_proof`: the weakest proof level (fleet.presence)
of the arrivals and departures the row counts, empty when none has one. A deleted visit (SUP)
counts nowhere; a visit with no retained period yet (HOR) counts its raw hours only.

Rows come in the order the query gives them (by caregiver or client, then planned start), so
each total is written as soon as its group ends: memory stays flat with the number of visits.
Every text cell that a spreadsheet would read as a formula (starting with =, +, -, @, a tab or
a carriage return) is neutralised with a leading apostrophe. The `excel-fr` dialect writes `;`
between cells, decimal commas and a byte-order mark, so that a French Excel opens it as is.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session

from fleet.exports.rows import ExportError, Range, day_range, minutes, organisation, people, \
    visits
from fleet.funding import PlanIndex
from fleet.models import Funder
from fleet.presence import LEVELS

DIALECTS = ("csv", "excel-fr")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
FLUSH_ROWS = 500

PAYROLL_HEADER = ("caregiver_id", "caregiver", "period", "day_or_week", "visits", "raw_hours",
                  "retained_hours", "km", "expenses_eur", "weakest_proof")
BILLING_HEADER = ("client_id", "client", "beneficiary_ref", "funder_id", "funder",
                  "funder_kind", "funder_identifier", "order_reference", "visits", "raw_hours",
                  "retained_hours", "weakest_proof")


def neutralise(cell: object) -> str:
    """A cell as text, with a leading apostrophe when a spreadsheet would run it."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(_FORMULA) else text


@dataclass
class Totals:
    visits: int = 0
    raw_min: int = 0
    retained_min: int = 0
    km: int = 0
    expenses_cents: int = 0
    weakest: str | None = None  # the weakest proof level of the clock events counted

    def add(self, raw: int, retained: int, km: int, cents: int,
            proofs: tuple[str | None, ...] = ()) -> None:
        for level in proofs:
            if level in LEVELS and (self.weakest is None
                                    or LEVELS.index(level) > LEVELS.index(self.weakest)):
                self.weakest = level
        self.visits += 1
        self.raw_min += raw
        self.retained_min += retained
        self.km += km
        self.expenses_cents += cents


@dataclass
class Writer:
    """CSV text in the chosen dialect, handed out as byte chunks."""

    dialect: str
    buf: io.StringIO = field(default_factory=io.StringIO)
    pending: int = 0

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ExportError(422, f"dialect {self.dialect!r}: csv or excel-fr")
        self.out = csv.writer(self.buf, delimiter=";" if self.dialect == "excel-fr" else ",",
                              lineterminator="\r\n")
        if self.dialect == "excel-fr":
            self.buf.write("\ufeff")

    def hours(self, mins: int) -> str:
        text = f"{mins / 60:.2f}"
        return text.replace(".", ",") if self.dialect == "excel-fr" else text

    def euros(self, cents: int) -> str:
        text = f"{cents / 100:.2f}"
        return text.replace(".", ",") if self.dialect == "excel-fr" else text

    def row(self, cells) -> None:
        self.out.writerow([neutralise(c) for c in cells])
        self.pending += 1

    @property
    def full(self) -> bool:
        return self.pending >= FLUSH_ROWS

    def flush(self) -> bytes:
        data = self.buf.getvalue().encode()
        self.buf.seek(0)
        self.buf.truncate()
        self.pending = 0
        return data


def _counts(row) -> tuple[int, int] | None:
    """(raw minutes, retained minutes) of a visit, None for a deleted one (SUP)."""
    if row.correction_code == "SUP":
        return None
    retained = 0 if row.correction_code == "HOR" else (
        minutes(row.retained_start, row.retained_end) or 0)
    return minutes(row.actual_start, row.actual_end) or 0, retained


@dataclass
class TableExport:
    session: Session
    org_id: int
    span: Range
    dialect: str
    kind: str  # payroll | billing
    funder: Funder | None
    filename: str

    def chunks(self) -> Iterator[bytes]:
        return (self._payroll() if self.kind == "payroll" else self._billing())

    def _payroll(self) -> Iterator[bytes]:
        w = Writer(self.dialect)
        w.row(PAYROLL_HEADER)
        _, carers, _ = people(self.session, self.org_id)
        who: int | None = None
        day: date | None = None
        week: tuple[int, int] | None = None
        per_day, per_week = Totals(), Totals()

        def close_day():
            w.row((who, carers[who].name, "day", day.isoformat(), per_day.visits,
                          w.hours(per_day.raw_min), w.hours(per_day.retained_min), per_day.km,
                          w.euros(per_day.expenses_cents), per_day.weakest))

        def close_week():
            w.row((who, carers[who].name, "week", f"{week[0]}-W{week[1]:02d}",
                          per_week.visits, w.hours(per_week.raw_min),
                          w.hours(per_week.retained_min), per_week.km,
                          w.euros(per_week.expenses_cents), per_week.weakest))

        for row in visits(self.session, self.org_id, self.span, order="caregiver"):
            counts = _counts(row)
            if counts is None:
                continue
            d = self.span.day_of(row.planned_start)
            wk = d.isocalendar()[:2]
            if who is not None and (row.caregiver_id != who or d != day):
                close_day()
                per_day = Totals()
                if row.caregiver_id != who or wk != week:
                    close_week()
                    per_week = Totals()
                if w.full:
                    yield w.flush()
            who, day, week = row.caregiver_id, d, wk
            for t in (per_day, per_week):
                t.add(*counts, row.km or 0, row.expenses_cents or 0,
                      (row.start_proof, row.end_proof))
        if who is not None:
            close_day()
            close_week()
        yield w.flush()

    def _billing(self) -> Iterator[bytes]:
        w = Writer(self.dialect)
        w.row(BILLING_HEADER)
        clients, _, _ = people(self.session, self.org_id)
        plans = PlanIndex.load(self.session, self.org_id,
                               self.funder.id if self.funder else None)
        current: int | None = None
        groups: dict = {}  # plan line (or None) -> Totals, for the current client

        def close_client():
            client = clients[current]
            for line, t in sorted(groups.items(), key=lambda kv: (kv[0] is None,
                                                                  kv[0] and kv[0].plan_id)):
                w.row((client.id, client.name, line.beneficiary_ref if line else "",
                       line.funder_id if line else "", line.funder_name if line else "",
                       line.funder_kind if line else "",
                       line.funder_identifier if line else "",
                       line.reference if line else "", t.visits, w.hours(t.raw_min),
                       w.hours(t.retained_min), t.weakest))

        for row in visits(self.session, self.org_id, self.span, order="client"):
            counts = _counts(row)
            if counts is None:
                continue
            line = plans.find(row.client_id, row.service_id,
                              self.span.day_of(row.planned_start))
            if line is None and self.funder is not None:
                continue
            if current is not None and row.client_id != current:
                close_client()
                groups = {}
                if w.full:
                    yield w.flush()
            current = row.client_id
            groups.setdefault(line, Totals()).add(*counts, row.km or 0,
                                                  row.expenses_cents or 0,
                                                  (row.start_proof, row.end_proof))
        if current is not None:
            close_client()
        yield w.flush()


def prepare(session: Session, org_id: int, kind: str, first: date, last: date,
            dialect: str = "csv", funder_id: int | None = None) -> TableExport:
    """Check a payroll or billing export; raises ExportError before any output."""
    if kind not in ("payroll", "billing"):
        raise ExportError(422, f"unknown export {kind!r}: payroll or billing")
    if dialect not in DIALECTS:
        raise ExportError(422, f"dialect {dialect!r}: csv or excel-fr")
    org = organisation(session, org_id)
    span = day_range(org, first, last)
    funder = None
    if funder_id is not None:
        if kind == "payroll":
            raise ExportError(422, "payroll is per caregiver, not per funder: leave the funder "
                                   "out")
        funder = session.get(Funder, funder_id)
        if funder is None or funder.organisation_id != org.id:
            raise ExportError(404, f"funder {funder_id} not found in organisation {org.id}")
    suffix = f"-funder{funder.id}" if funder else ""
    name = f"{kind}-org{org.id}-{first:%Y%m%d}_{last:%Y%m%d}{suffix}.csv"
    return TableExport(session, org.id, span, dialect, kind, funder, name)
