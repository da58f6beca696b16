"""The client record a caregiver needs at the door, and the agency's own fields.

Each client has an access code (digicode), where the key box is and its code, care notes,
family contacts (name, relation, phone) and values of the fields the agency defines
(`client_fields`: text, number, date or choice, each visible to caregivers or to the office
only). The API, the console and the caregiver's phone all go through here: `update` checks
every value and changes nothing when one is wrong (RecordError names it); `for_caregivers` is
what a phone receives, only for the clients it visits today (fleet.gateway.planning), never an
office-only field. Changes are audited by the names of what changed, never the values (an
access code has no place in the audit log).
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.models import CLIENT_FIELD_AUDIENCES, CLIENT_FIELD_KINDS, Client, ClientField

MAX_FIELDS = 30
MAX_CONTACTS = 6
MAX_TEXT = 500
MAX_NOTES = 4000
MAX_CHOICES = 20
PHONE = re.compile(r"^\+?[0-9][0-9 .-]{1,18}[0-9]$")  # 01 23 45 67 89, +33 6 12..., 15
_KEY = re.compile(r"[^a-z0-9]+")


class RecordError(ValueError):
    """A value refused: `field` names it, the message says why (English · French)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def fields(session: Session, organisation_id: int, *, active_only: bool = True
           ) -> list[ClientField]:
    q = select(ClientField).where(ClientField.organisation_id == organisation_id)
    if active_only:
        q = q.where(ClientField.active)
    return list(session.scalars(q.order_by(ClientField.position, ClientField.id)))


def _text(name: str, value, limit: int) -> str:
    value = "" if value is None else str(value).strip()
    if len(value) > limit:
        raise RecordError(name, f"over {limit} characters · plus de {limit} caractères")
    return value


def _choices(kind: str, raw) -> list[str]:
    if kind != "choice":
        return []
    items = raw.splitlines() if isinstance(raw, str) else list(raw or [])
    out = list(dict.fromkeys(_text("choices", c, 100) for c in items if str(c).strip()))
    if not 2 <= len(out) <= MAX_CHOICES:
        raise RecordError("choices", f"a choice needs 2 to {MAX_CHOICES} options · un choix "
                                     f"demande de 2 à {MAX_CHOICES} options")
    return out


def define(session: Session, organisation_id: int, label: str, kind: str, *,
           visible_to: str = "office", choices=None, who: str, role: str | None = None
           ) -> ClientField:
    """A new field of the agency's client records; the caller commits."""
    label = _text("label", label, 100)
    if not label:
        raise RecordError("label", "required · obligatoire")
    if kind not in CLIENT_FIELD_KINDS:
        raise RecordError("kind", f"one of {', '.join(CLIENT_FIELD_KINDS)} · type inconnu")
    if visible_to not in CLIENT_FIELD_AUDIENCES:
        raise RecordError("visible_to", "caregivers or office · intervenants ou bureau")
    existing = fields(session, organisation_id, active_only=False)
    if len([f for f in existing if f.active]) >= MAX_FIELDS:
        raise RecordError("label", f"at most {MAX_FIELDS} fields · {MAX_FIELDS} champs au plus")
    plain = unicodedata.normalize("NFKD", label.lower()).encode("ascii", "ignore").decode()
    key = _KEY.sub("_", plain).strip("_")[:36] or "field"
    taken = {f.key for f in existing}
    base, n = key, 2
    while key in taken:
        key = f"{base[:36]}_{n}"
        n += 1
    field = ClientField(organisation_id=organisation_id, key=key, label=label, kind=kind,
                        visible_to=visible_to, choices=_choices(kind, choices),
                        position=len(existing), active=True)
    session.add(field)
    session.flush()
    audit.record(session, who, "client_field", f"client_field:{field.id}", role=role,
                 detail={"label": label, "kind": kind, "visible_to": visible_to})
    return field


def change(session: Session, field: ClientField, *, who: str, role: str | None = None,
           label: str | None = None, visible_to: str | None = None, choices=None,
           active: bool | None = None) -> ClientField:
    """Rename, show to caregivers or hide, change a choice's options, retire or bring back a
    field (values are kept: a retired field is shown nowhere). Its kind never changes."""
    changed = {}
    if label is not None:
        label = _text("label", label, 100)
        if not label:
            raise RecordError("label", "required · obligatoire")
        changed["label"] = field.label = label
    if visible_to is not None:
        if visible_to not in CLIENT_FIELD_AUDIENCES:
            raise RecordError("visible_to", "caregivers or office · intervenants ou bureau")
        changed["visible_to"] = field.visible_to = visible_to
    if choices is not None and field.kind == "choice":
        field.choices = changed["choices"] = _choices("choice", choices)
    if active is not None:
        changed["active"] = field.active = bool(active)
    audit.record(session, who, "client_field", f"client_field:{field.id}", role=role,
                 detail=changed)
    return field


def coerce(field: ClientField, raw) -> str | float | int | None:
    """A field's value from what a form or the API sent; None (or "") clears it."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    name = field.label
    if field.kind == "text":
        return _text(name, raw, MAX_TEXT)
    if field.kind == "number":
        if isinstance(raw, bool):
            raise RecordError(name, "not a number · pas un nombre")
        if isinstance(raw, (int, float)):
            value = raw
        else:
            text = str(raw).strip().replace(",", ".").replace(" ", "")
            try:
                value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
            except ValueError:
                raise RecordError(name, f"{raw!r} is not a number · n'est pas un nombre"
                                  ) from None
        if value != value or value in (float("inf"), float("-inf")) or abs(value) > 1e12:
            raise RecordError(name, "not a usable number · nombre inutilisable")
        return value
    if field.kind == "date":
        text = str(raw).strip()
        m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text)
        try:
            day = (date(int(m.group(3)), int(m.group(2)), int(m.group(1))) if m
                   else date.fromisoformat(text))
        except ValueError:
            raise RecordError(name, f"{raw!r} is not a date (YYYY-MM-DD or DD/MM/YYYY) · "
                                    "n'est pas une date") from None
        return day.isoformat()
    value = str(raw).strip()
    if value not in field.choices:
        raise RecordError(name, f"{value!r} is not one of {', '.join(field.choices)} · "
                                "n'est pas une option")
    return value


def _contacts(raw) -> list[dict]:
    """[{"name", "relation", "phone"}] from a list of dicts or of "name; relation; phone"
    lines (the console's textarea)."""
    if isinstance(raw, str):
        raw = [dict(zip(("name", "relation", "phone"), (p.strip() for p in line.split(";"))))
               for line in raw.splitlines() if line.strip()]
    out = []
    for i, item in enumerate(raw or [], 1):
        if not isinstance(item, dict):
            raise RecordError("family_contacts", f"contact {i}: name, relation, phone · nom, "
                                                 "lien, téléphone")
        name = _text("family_contacts", item.get("name"), 100)
        relation = _text("family_contacts", item.get("relation"), 60)
        phone = _text("family_contacts", item.get("phone"), 32)
        if not name:
            raise RecordError("family_contacts", f"contact {i}: a name is required · nom "
                                                 "obligatoire")
        if not PHONE.match(phone):
            raise RecordError("family_contacts", f"contact {i}: {phone!r} is not a phone "
                                                 "number · n'est pas un numéro")
        out.append({"name": name, "relation": relation, "phone": phone})
    if len(out) > MAX_CONTACTS:
        raise RecordError("family_contacts", f"at most {MAX_CONTACTS} contacts · "
                                             f"{MAX_CONTACTS} contacts au plus")
    return out


def update(session: Session, client: Client, values: dict, *, who: str,
           role: str | None = None) -> list[str]:
    """Set what `values` holds (access_code, key_box, care_notes, family_contacts, custom:
    {key: value}); every value is checked before anything changes. The names of what changed;
    the caller commits."""
    new = {}
    if "access_code" in values:
        new["access_code"] = _text("access_code", values["access_code"], 64)
    if "key_box" in values:
        new["key_box"] = _text("key_box", values["key_box"], 200)
    if "care_notes" in values:
        new["care_notes"] = _text("care_notes", values["care_notes"], MAX_NOTES)
    if "family_contacts" in values:
        new["family_contacts"] = _contacts(values["family_contacts"])
    if "custom" in values:
        given = values["custom"] or {}
        if not isinstance(given, dict):
            raise RecordError("custom", "an object of field keys · un objet de champs")
        known = {f.key: f for f in fields(session, client.organisation_id)}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise RecordError("custom", f"unknown field {unknown[0]!r} · champ inconnu")
        custom = dict(client.custom or {})
        for key, raw in given.items():
            value = coerce(known[key], raw)
            if value is None:
                custom.pop(key, None)
            else:
                custom[key] = value
        new["custom"] = custom
    changed = [k for k, v in new.items() if getattr(client, k) != v]
    for k in changed:
        setattr(client, k, new[k])
    if changed:
        audit.record(session, who, "client_record", f"client:{client.id}", role=role,
                     detail={"changed": changed})
    return changed


def shown(field: ClientField, value) -> str:
    """A value as people read it (a date in French order)."""
    if field.kind == "date" and value:
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    if field.kind == "number" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def for_caregivers(client: Client, agency_fields: list[ClientField]) -> dict:
    """What the caregiver's phone shows: the codes, notes, contacts, and the fields visible to
    caregivers that have a value, as [label, text] in the agency's order."""
    custom = client.custom or {}
    return {"access_code": client.access_code, "key_box": client.key_box,
            "notes": client.care_notes, "family": list(client.family_contacts or []),
            "fields": [[f.label, shown(f, custom[f.key])] for f in agency_fields
                       if f.active and f.visible_to == "caregivers" and f.key in custom]}
