"""The agency's numbers on the phones: emergency numbers (at most 5, one-tap `tel:` calls on the
Téléphone tab, in place of the built-in 112), office contacts (the directory) and whether the
directory lists colleagues' work numbers (never their private `phone`). One data layer for the
console's /numbers page and `GET/PUT /api/v1/emergency-numbers`; shipped with the phone's
planning (fleet.gateway.planning), so it all works offline. Every change is audited."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import AlertSettings, Caregiver, EmergencyNumber, Organisation

MAX_EMERGENCY = 5
MAX_OFFICE = 20
LABEL_MAX = 100
_SEPARATORS = re.compile(r"[\s.\-()/]")
# a short national number (15, 17, 112, 3114) up to a full E.164 one (15 digits)
_PHONE = re.compile(r"^\+?[0-9]{2,15}$")
FALLBACK = {"label": "Urgences (112)", "number": "112"}


class ContactProblem(ValueError):
    """A value the person must fix: `field` names it, the message says why (EN · FR)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def phone_number(raw: str, field: str = "number") -> str:
    """The number as dialled (`+33 6 12-34.56.78` → `+33612345678`), or ContactProblem."""
    text = str(raw or "").strip()
    number = _SEPARATORS.sub("", text)
    if not _PHONE.match(number) or number.startswith("+0"):
        raise ContactProblem(field, f"{text!r} is not a phone number (digits, an optional "
                                    "leading +, 2 to 15 digits) · n'est pas un numéro de "
                                    "téléphone")
    return number


def _entries(raw: list[dict[str, Any]], kind: str, limit: int) -> list[dict[str, str]]:
    entries = [e for e in raw if str(e.get("label", "")).strip() or
               str(e.get("number", "")).strip()]  # blank lines of a form are left out
    if len(entries) > limit:
        raise ContactProblem(kind, f"at most {limit} numbers · {limit} numéros au plus")
    out = []
    for i, e in enumerate(entries, 1):
        label = str(e.get("label", "")).strip()
        if not label or len(label) > LABEL_MAX:
            raise ContactProblem(f"{kind}[{i}].label", f"a label of 1 to {LABEL_MAX} "
                                 f"characters · un libellé de 1 à {LABEL_MAX} caractères")
        out.append({"label": label, "number": phone_number(e.get("number", ""),
                                                           f"{kind}[{i}].number")})
    return out


def read(session: Session, org: Organisation) -> dict[str, Any]:
    rows = session.scalars(select(EmergencyNumber).where(
        EmergencyNumber.organisation_id == org.id)
        .order_by(EmergencyNumber.position, EmergencyNumber.id)).all()
    settings = session.get(AlertSettings, org.id)
    return {"organisation_id": org.id,
            "emergency": [{"label": r.label, "number": r.number} for r in rows
                          if r.kind == "emergency"],
            "office": [{"label": r.label, "number": r.number} for r in rows
                       if r.kind == "office"],
            "directory_colleagues": bool(settings and settings.directory_colleagues)}


def replace(session: Session, org: Organisation, *, emergency: list[dict] | None = None,
            office: list[dict] | None = None, directory_colleagues: bool | None = None,
            who: str, role: str | None) -> dict[str, Any]:
    """Replace the lists given (None: unchanged) after checking everything; nothing is
    written when one entry is wrong. Audited with before and after. The caller commits."""
    before = read(session, org)
    after = dict(before)
    if emergency is not None:
        after["emergency"] = _entries(emergency, "emergency", MAX_EMERGENCY)
    if office is not None:
        after["office"] = _entries(office, "office", MAX_OFFICE)
    if directory_colleagues is not None:
        after["directory_colleagues"] = bool(directory_colleagues)
    changed = {k: [before[k], after[k]] for k in ("emergency", "office", "directory_colleagues")
               if before[k] != after[k]}
    if not changed:
        return {}
    for kind in ("emergency", "office"):
        if kind not in changed:
            continue
        for row in session.scalars(select(EmergencyNumber).where(
                EmergencyNumber.organisation_id == org.id, EmergencyNumber.kind == kind)):
            session.delete(row)
        session.flush()
        session.add_all(EmergencyNumber(organisation_id=org.id, kind=kind, position=i,
                                        label=e["label"], number=e["number"])
                        for i, e in enumerate(after[kind]))
    if "directory_colleagues" in changed:
        settings = session.get(AlertSettings, org.id)
        if settings is None:
            settings = AlertSettings(organisation_id=org.id)
            session.add(settings)
        settings.directory_colleagues = after["directory_colleagues"]
    audit.record(session, who, "contacts", f"organisation:{org.id}", role=role,
                 detail={"changed": changed})
    session.flush()
    return changed


def phone_book(session: Session, org: Organisation, caregiver_id: int | None) -> dict[str, Any]:
    """What a phone carries offline: `emergency` (the agency's, or 112 alone), the office
    contacts and, where the agency allows it, the other active caregivers' work numbers."""
    book = read(session, org)
    colleagues: list[dict[str, str]] = []
    if book["directory_colleagues"]:
        colleagues = [{"label": c.name, "number": c.work_phone}
                      for c in session.scalars(select(Caregiver).where(
                          Caregiver.organisation_id == org.id, Caregiver.active,
                          Caregiver.work_phone != "").order_by(Caregiver.name, Caregiver.id))
                      if c.id != caregiver_id]
    return {"emergency": book["emergency"] or [FALLBACK], "office": book["office"],
            "colleagues": colleagues}
