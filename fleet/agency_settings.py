"""An agency's settings: time zone, the rules of retained times (tolerance, rounding, overrun),
the visit alerts (thresholds, on-call e-mails) and the number an SOS calls (fleet.sos). One data
layer for the console's /settings page and `GET/PATCH /api/v1/alert-settings`; every change is
audited with what it was before."""
from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import OVERRUN_POLICIES, ROUNDING_MODES, AlertSettings, Organisation
from fleet.presence import DEFAULT_RADIUS_M
from fleet.visit_alerts import DEFAULT_LATE_MIN, DEFAULT_MISSED_MIN, oncall_addresses

ORG_FIELDS = ("timezone", "tolerance_min", "rounding_mode", "rounding_step_min",
              "overrun_policy")
ALERT_FIELDS = ("late_after_min", "missed_after_min", "oncall_emails")
SOS_FIELDS = ("sos_number",)  # the caregiver app calls it when an SOS goes off
# retention (fleet.retention, docs/privacy.md) and what a phone may report (fleet.gateway)
LIMIT_FIELDS = {"positions_keep_days": (1, 60, "days"), "rejections_keep_days": (1, 30, "days"),
                "audit_keep_days": (30, 3650, "days"), "report_window_h": (1, 168, "hours"),
                "report_km_max": (0, 5000, "km"),
                "report_expenses_max_cents": (0, 1_000_000, "cents"),
                # a clock event's position beyond this from the home: far_from_home (presence)
                "home_radius_m": (50, 10_000, "metres")}
LIMIT_DEFAULTS = {"positions_keep_days": 60, "rejections_keep_days": 30,
                  "audit_keep_days": 1825, "report_window_h": 24, "report_km_max": 300,
                  "report_expenses_max_cents": 20000, "home_radius_m": DEFAULT_RADIUS_M}
FIELDS = ORG_FIELDS + ALERT_FIELDS + SOS_FIELDS + tuple(LIMIT_FIELDS)
MAX_ONCALL = 20
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 .-]{1,19}$")
_RANGES = {"tolerance_min": (0, 240), "rounding_step_min": (1, 60),
           "late_after_min": (1, 1440), "missed_after_min": (1, 1440)}


class SettingsProblem(ValueError):
    """A value the person must fix: `field` names it, the message says why (EN · FR)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def read(session: Session, org: Organisation) -> dict[str, Any]:
    row = session.get(AlertSettings, org.id)
    return {
        "organisation_id": org.id,
        "timezone": org.timezone, "tolerance_min": org.tolerance_min,
        "rounding_mode": org.rounding_mode, "rounding_step_min": org.rounding_step_min,
        "overrun_policy": org.overrun_policy,
        "late_after_min": row.late_after_min if row else DEFAULT_LATE_MIN,
        "missed_after_min": row.missed_after_min if row else DEFAULT_MISSED_MIN,
        "oncall_emails": oncall_addresses(row.oncall_emails) if row else [],
        "sos_number": row.sos_number if row else "",
        **{f: getattr(row, f) if row else LIMIT_DEFAULTS[f] for f in LIMIT_FIELDS},
    }


def parse_emails(raw: str | list[str]) -> list[str]:
    """Addresses separated by commas, semicolons or line breaks; each checked, duplicates
    (case aside) dropped."""
    items = raw if isinstance(raw, list) else re.split(r"[,;\n]", raw or "")
    out: list[str] = []
    for item in items:
        address = str(item).strip()
        if not address:
            continue
        if len(address) > 254 or not _EMAIL.match(address):
            raise SettingsProblem("oncall_emails", f"{address!r} is not an e-mail address · "
                                                   "n'est pas une adresse e-mail")
        if address.lower() not in (a.lower() for a in out):
            out.append(address)
    if len(out) > MAX_ONCALL:
        raise SettingsProblem("oncall_emails", f"at most {MAX_ONCALL} addresses · "
                                               f"{MAX_ONCALL} adresses au plus")
    return out


def _check(field: str, value: Any) -> Any:
    if field == "timezone":
        name = str(value).strip()
        try:
            if name not in available_timezones():
                raise ZoneInfoNotFoundError(name)
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsProblem(field, f"{name!r} is not a time zone (e.g. Europe/Paris) · "
                                         "fuseau horaire inconnu") from None
        return name
    if field in LIMIT_FIELDS:
        lo, hi, unit = LIMIT_FIELDS[field]
        try:
            number = int(str(value).strip())
        except ValueError:
            raise SettingsProblem(field, f"{value!r} is not a whole number · nombre entier "
                                         "attendu") from None
        if not lo <= number <= hi:
            raise SettingsProblem(field, f"{number}: expected {lo} to {hi} {unit} · entre "
                                         f"{lo} et {hi}")
        return number
    if field in _RANGES:
        lo, hi = _RANGES[field]
        try:
            number = int(str(value).strip())
        except ValueError:
            raise SettingsProblem(field, f"{value!r} is not a whole number of minutes · "
                                         "nombre entier de minutes attendu") from None
        if not lo <= number <= hi:
            raise SettingsProblem(field, f"{number}: expected {lo} to {hi} minutes · "
                                         f"entre {lo} et {hi} minutes")
        return number
    if field == "rounding_mode" and value not in ROUNDING_MODES:
        raise SettingsProblem(field, f"{value!r}: one of {', '.join(ROUNDING_MODES)}")
    if field == "overrun_policy" and value not in OVERRUN_POLICIES:
        raise SettingsProblem(field, f"{value!r}: one of {', '.join(OVERRUN_POLICIES)}")
    if field == "oncall_emails":
        return parse_emails(value)
    if field == "sos_number":
        number = " ".join(str(value or "").split())
        if number and not _PHONE.match(number):
            raise SettingsProblem(field, f"{number!r} is not a phone number (digits, spaces, "
                                         "dots, dashes, a leading +) · n'est pas un numéro de "
                                         "téléphone")
        return number
    return value


def update(session: Session, org: Organisation, changes: dict[str, Any], *, who: str,
           role: str | None) -> dict[str, Any]:
    """Apply `changes` (any of FIELDS) after checking them all; nothing is written when one is
    wrong. Returns the fields that changed as {field: [before, after]}; audited when any did.
    The caller commits."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise SettingsProblem(sorted(unknown)[0], "unknown setting · réglage inconnu")
    before = read(session, org)
    after = {**before, **{f: _check(f, v) for f, v in changes.items()}}
    if after["late_after_min"] >= after["missed_after_min"]:
        raise SettingsProblem("missed_after_min", "must be longer than the late threshold · "
                                                  "doit dépasser le seuil de retard")
    changed = {f: [before[f], after[f]] for f in FIELDS if before[f] != after[f]}
    if not changed:
        return {}
    for f in ORG_FIELDS:
        setattr(org, f, after[f])
    row = session.get(AlertSettings, org.id)
    if row is None:
        row = AlertSettings(organisation_id=org.id)
        session.add(row)
    row.late_after_min, row.missed_after_min = after["late_after_min"], after["missed_after_min"]
    row.oncall_emails = ", ".join(after["oncall_emails"])
    row.sos_number = after["sos_number"]
    for f in LIMIT_FIELDS:
        setattr(row, f, after[f])
    audit.record(session, who, "settings", f"organisation:{org.id}", role=role,
                 detail={"changed": changed})
    session.flush()
    return changed
