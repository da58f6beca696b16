"""Funders and funding plans: who pays for a client's care, under which order line.

One data layer for the API (/api/v1/funders, /api/v1/funding-plans), the console (/funders) and
the exports (fleet.exports): the caller commits. A funder is a département (APA, PCH) or a health
insurer (AM); its télétransmission identifier goes into every ESPPADOM DELIVERY sent to it, so
it is checked here and an export refuses a funder that has none (docs/exports.md). A funding
plan (plan d'aide) ties a client to a funder, optionally for one service, over dates; two plans
of the same client, funder and service never overlap, so that a visit has one order line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import FUNDER_KINDS, Client, Funder, FundingPlan, Service

# ESPPADOM identifiers are tokens: letters, digits and a few separators, no spaces
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_REF = re.compile(r"^[^\s<>&\"']{1,64}$")
FUNDER_FIELDS = ("kind", "name", "identifier", "active")
PLAN_FIELDS = ("client_id", "funder_id", "service_id", "reference", "beneficiary_ref",
               "minutes_per_month", "valid_from", "valid_to")


class FundingError(Exception):
    """Refused: `status` is the HTTP status the API answers (404, 409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# -- funders -------------------------------------------------------------------------------------
def _funder_values(values: dict) -> dict:
    out = {}
    if "kind" in values:
        kind = str(values["kind"] or "").strip().upper()
        if kind not in FUNDER_KINDS:
            raise FundingError(422, f"funder kind {values['kind']!r}: APA, PCH or AM")
        out["kind"] = kind
    if "name" in values:
        name = str(values["name"] or "").strip()
        if not 1 <= len(name) <= 200:
            raise FundingError(422, "a funder's name is 1 to 200 characters")
        out["name"] = name
    if "identifier" in values:
        ident = str(values["identifier"] or "").strip()
        if ident and not _IDENT.match(ident):
            raise FundingError(422, f"identifier {ident!r}: the funder's télétransmission "
                                    "identifier is 1 to 64 letters, digits or . _ / - "
                                    "(no spaces)")
        out["identifier"] = ident
    if "active" in values:
        out["active"] = bool(values["active"])
    return out


def _name_taken(session: Session, org_id: int, name: str, but: int | None) -> None:
    q = select(Funder.id).where(Funder.organisation_id == org_id, Funder.name == name)
    if but is not None:
        q = q.where(Funder.id != but)
    other = session.scalar(q)
    if other is not None:
        raise FundingError(409, f"funder {other} is already named {name!r}")


def create_funder(session: Session, who: str, org_id: int, values: dict, *,
                  role: str | None = None, note: dict | None = None) -> Funder:
    """A new funder of organisation `org_id`; `values` has kind and name, maybe identifier."""
    fields = _funder_values({"identifier": "", "active": True, **values})
    for needed in ("kind", "name"):
        if needed not in fields:
            raise FundingError(422, f"a funder needs its {needed}")
    _name_taken(session, org_id, fields["name"], None)
    funder = Funder(organisation_id=org_id, **fields)
    session.add(funder)
    session.flush()
    audit.record(session, who, "create", f"funder:{funder.id}", role=role,
                 detail={**(note or {}), **fields})
    return funder


def update_funder(session: Session, who: str, funder: Funder, values: dict, *,
                  role: str | None = None, note: dict | None = None) -> dict:
    """Apply `values` (any of kind, name, identifier, active); returns what changed."""
    fields = _funder_values({k: v for k, v in values.items() if k in FUNDER_FIELDS})
    if "name" in fields:
        _name_taken(session, funder.organisation_id, fields["name"], funder.id)
    changes = {k: v for k, v in fields.items() if getattr(funder, k) != v}
    for k, v in changes.items():
        setattr(funder, k, v)
    if changes:
        session.flush()
        audit.record(session, who, "update", f"funder:{funder.id}", role=role,
                     detail={**(note or {}), **changes})
    return changes


def funders(session: Session, org_id: int | None, active: bool | None = None):
    """A select of funders (of one organisation, or of all when `org_id` is None)."""
    q = select(Funder).order_by(Funder.name, Funder.id)
    if org_id is not None:
        q = q.where(Funder.organisation_id == org_id)
    if active is not None:
        q = q.where(Funder.active == active)
    return q


# -- funding plans -------------------------------------------------------------------------------
def _as_date(value, what: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise FundingError(422, f"{what} {value!r} is not a date (YYYY-MM-DD)") from None


def _plan_values(session: Session, org_id: int, values: dict) -> dict:
    out: dict = {}
    if "client_id" in values:
        client = session.get(Client, values["client_id"]) if values["client_id"] else None
        if client is None or client.organisation_id != org_id:
            raise FundingError(422, f"client {values['client_id']} not found in this agency")
        out["client_id"] = client.id
    if "funder_id" in values:
        funder = session.get(Funder, values["funder_id"]) if values["funder_id"] else None
        if funder is None or funder.organisation_id != org_id:
            raise FundingError(422, f"funder {values['funder_id']} not found in this agency")
        out["funder_id"] = funder.id
    if "service_id" in values:
        sid = values["service_id"] or None
        if sid is not None:
            service = session.get(Service, sid)
            if service is None or service.organisation_id != org_id:
                raise FundingError(422, f"service {sid} not found in this agency")
        out["service_id"] = sid
    if "reference" in values:
        ref = str(values["reference"] or "").strip()
        if not _REF.match(ref):
            raise FundingError(422, "the plan's reference (the funder's order line) is 1 to 64 "
                                    "characters, without spaces")
        out["reference"] = ref
    if "beneficiary_ref" in values:
        ref = str(values["beneficiary_ref"] or "").strip()
        if ref and not _REF.match(ref):
            raise FundingError(422, "the beneficiary's reference is at most 64 characters, "
                                    "without spaces")
        out["beneficiary_ref"] = ref
    if "minutes_per_month" in values:
        raw = values["minutes_per_month"]
        minutes = None if raw in (None, "") else raw
        if minutes is not None:
            try:
                minutes = int(minutes)
            except (TypeError, ValueError):
                raise FundingError(422, f"minutes per month {raw!r} is not a number") from None
            if not 0 < minutes <= 31 * 24 * 60:
                raise FundingError(422, "minutes per month: from 1 to 44640")
        out["minutes_per_month"] = minutes
    if "valid_from" in values:
        start = _as_date(values["valid_from"], "valid_from")
        if start is None:
            raise FundingError(422, "a funding plan needs its first day (valid_from)")
        out["valid_from"] = start
    if "valid_to" in values:
        out["valid_to"] = _as_date(values["valid_to"], "valid_to")
    return out


def _check_plan(session: Session, plan: FundingPlan) -> None:
    """Dates in order, no overlap with another plan of the same client, funder and service."""
    if plan.valid_to is not None and plan.valid_to < plan.valid_from:
        raise FundingError(422, f"the plan ends ({plan.valid_to}) before it starts "
                                f"({plan.valid_from})")
    q = select(FundingPlan).where(FundingPlan.client_id == plan.client_id,
                                  FundingPlan.funder_id == plan.funder_id)
    q = q.where(FundingPlan.service_id.is_(None) if plan.service_id is None
                else FundingPlan.service_id == plan.service_id)
    if plan.id is not None:
        q = q.where(FundingPlan.id != plan.id)
    for other in session.scalars(q):
        if overlaps(plan.valid_from, plan.valid_to, other.valid_from, other.valid_to):
            until = other.valid_to.isoformat() if other.valid_to else "open-ended"
            raise FundingError(409, f"plan {other.id} ({other.reference}, "
                                    f"{other.valid_from} to {until}) already covers these "
                                    "dates for this client, funder and service")


def overlaps(a_from: date, a_to: date | None, b_from: date, b_to: date | None) -> bool:
    """Two date ranges, both ends included, None for open-ended, share a day."""
    return (a_to is None or b_from <= a_to) and (b_to is None or a_from <= b_to)


def _dumpable(fields: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in fields.items()}


def create_plan(session: Session, who: str, org_id: int, values: dict, *,
                role: str | None = None, note: dict | None = None) -> FundingPlan:
    """A new funding plan; `values` has client_id, funder_id, reference, valid_from at least."""
    fields = _plan_values(session, org_id, {"service_id": None, "beneficiary_ref": "",
                                            "minutes_per_month": None, "valid_to": None,
                                            **{k: v for k, v in values.items()
                                               if k in PLAN_FIELDS}})
    for needed in ("client_id", "funder_id", "reference", "valid_from"):
        if needed not in fields:
            raise FundingError(422, f"a funding plan needs its {needed}")
    plan = FundingPlan(organisation_id=org_id, **fields)
    _check_plan(session, plan)
    session.add(plan)
    session.flush()
    audit.record(session, who, "create", f"funding_plan:{plan.id}", role=role,
                 detail={**(note or {}), **_dumpable(fields)})
    return plan


def update_plan(session: Session, who: str, plan: FundingPlan, values: dict, *,
                role: str | None = None, note: dict | None = None) -> dict:
    """Apply `values` (any of PLAN_FIELDS); returns what changed."""
    fields = _plan_values(session, plan.organisation_id,
                          {k: v for k, v in values.items() if k in PLAN_FIELDS})
    changes = {k: v for k, v in fields.items() if getattr(plan, k) != v}
    if not changes:
        return {}
    before = {k: getattr(plan, k) for k in changes}
    with session.no_autoflush:
        for k, v in changes.items():
            setattr(plan, k, v)
        try:
            _check_plan(session, plan)
        except FundingError:
            for k, v in before.items():
                setattr(plan, k, v)
            raise
    session.flush()
    audit.record(session, who, "update", f"funding_plan:{plan.id}", role=role,
                 detail={**(note or {}), **_dumpable(changes)})
    return changes


def delete_plan(session: Session, who: str, plan: FundingPlan, *,
                role: str | None = None) -> None:
    """A plan entered by mistake; the audit entry keeps what it was."""
    detail = _dumpable({k: getattr(plan, k) for k in PLAN_FIELDS})
    session.delete(plan)
    session.flush()
    audit.record(session, who, "delete", f"funding_plan:{plan.id}", role=role, detail=detail)


def plans(session: Session, org_id: int | None, client_id: int | None = None,
          funder_id: int | None = None):
    """A select of funding plans, newest first within each client."""
    q = select(FundingPlan).order_by(FundingPlan.client_id, FundingPlan.valid_from.desc(),
                                     FundingPlan.id)
    if org_id is not None:
        q = q.where(FundingPlan.organisation_id == org_id)
    if client_id is not None:
        q = q.where(FundingPlan.client_id == client_id)
    if funder_id is not None:
        q = q.where(FundingPlan.funder_id == funder_id)
    return q


# -- which plan pays for a visit -----------------------------------------------------------------
@dataclass(frozen=True)
class PlanLine:
    """What an export needs of a plan and its funder (no ORM object kept)."""

    plan_id: int
    reference: str
    beneficiary_ref: str
    service_id: int | None
    valid_from: date
    valid_to: date | None
    funder_id: int
    funder_kind: str
    funder_name: str
    funder_identifier: str


class PlanIndex:
    """Every plan of an agency in memory, by client (a few per client: small beside the
    visits), to find the one a visit is billed to without a query per visit."""

    def __init__(self) -> None:
        self.by_client: dict[int, list[PlanLine]] = {}

    @classmethod
    def load(cls, session: Session, org_id: int, funder_id: int | None = None) -> PlanIndex:
        q = (select(FundingPlan, Funder).join(Funder, Funder.id == FundingPlan.funder_id)
             .where(FundingPlan.organisation_id == org_id)
             .order_by(FundingPlan.client_id, FundingPlan.id))
        if funder_id is not None:
            q = q.where(FundingPlan.funder_id == funder_id)
        index = cls()
        for plan, funder in session.execute(q):
            index.by_client.setdefault(plan.client_id, []).append(PlanLine(
                plan.id, plan.reference, plan.beneficiary_ref, plan.service_id,
                plan.valid_from, plan.valid_to, funder.id, funder.kind, funder.name,
                funder.identifier))
        return index

    def find(self, client_id: int, service_id: int | None, day: date) -> PlanLine | None:
        """The plan covering `day`: one for the visit's service before one for any service,
        then the oldest (the lowest id), so that the answer never depends on row order."""
        best = None
        for line in self.by_client.get(client_id, ()):
            if line.valid_from > day or (line.valid_to is not None and line.valid_to < day):
                continue
            if line.service_id is not None and line.service_id != service_id:
                continue
            if best is None or (best.service_id is None and line.service_id is not None):
                best = line
        return best
