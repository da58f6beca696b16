"""CSV planning import: upload, preview (a dry run with each row's errors), then confirm.

The confirm form carries the very bytes that were previewed (base64) with a signature, so
what is saved is what was shown. The import is all or nothing: any error row, in the preview
or found again at confirm time, and nothing is saved.
"""
from __future__ import annotations

import base64
import hashlib
import re
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from fleet import audit
from fleet import visits as planning_visits
from fleet.api.data import MAX_UPLOAD_BYTES
from fleet.console import forms
from fleet.console.auth import Viewer, sign, tokens_match, unsign
from fleet.console.web import (Missing, PlannerDep, PlannerPostDep, SessionDep, organisation,
                               page, redirect)
from fleet.directory import PlanningError
from fleet.i18n import N_
from fleet.models import Organisation
from fleet.visit_import import ImportFileError, ImportResult, parse_planning

router = APIRouter(include_in_schema=False)
MAX_BYTES = MAX_UPLOAD_BYTES  # the API takes the same files

NOT_TEXT = (N_("This file is not CSV text (a spreadsheet, or UTF-16): in Excel or LibreOffice "
               "use “Save as… CSV UTF-8”"))
ODD_ENCODING = (N_("Neither UTF-8 nor Windows-1252: check the accents below or save the file as"
                   " CSV UTF-8"))
TOO_BIG = N_("The file is over 2 MB")
NOTHING_SAVED = N_("Nothing was saved")

# the importer's messages, in French too (what is not listed is shown in English only)
_FRENCH = [
    (re.compile(r"is not a date"), "date invalide : AAAA-MM-JJ ou JJ/MM/AAAA"),
    (re.compile(r"is not a time"), "heure invalide : HH:MM"),
    (re.compile(r"clocks change"), "heure inexistante (changement d'heure)"),
    (re.compile(r"^unknown client"), "usager inconnu"),
    (re.compile(r"^unknown caregiver"), "intervenant inconnu"),
    (re.compile(r"^unknown service"), "prestation inconnue"),
    (re.compile(r"^several"), "plusieurs homonymes : utilisez l'identifiant"),
    (re.compile(r"is not after start"), "la fin doit suivre le début"),
    (re.compile(r"^same visit as row"), "même intervention qu'une autre ligne"),
    (re.compile(r"^already planned"), "déjà planifiée"),
    (re.compile(r"is empty$"), "case vide"),
    (re.compile(r"^missing column"), "colonne manquante"),
    (re.compile(r"the file is empty"), "le fichier est vide"),
]


def bilingual(message: str) -> str:
    for pattern, french in _FRENCH:
        if pattern.search(message):
            return f"{message} · {french}"
    return message


def _org(session: Session, viewer: Viewer) -> Organisation:
    org = organisation(session, viewer)
    if org is None:
        raise Missing(N_("No organisation yet"))
    return org


def _preview(session: Session, org: Organisation, raw: bytes) -> tuple[ImportResult | None,
                                                                          list[dict], str | None]:
    """(result, errors with bilingual messages, a message about the file as a whole)."""
    if len(raw) > MAX_BYTES:
        return None, [], TOO_BIG
    if b"\x00" in raw or raw.startswith(b"PK\x03\x04"):
        return None, [], NOT_TEXT
    try:
        result = parse_planning(session, org, raw)
    except ImportFileError as e:
        return None, [{**err, "message": bilingual(err["message"])} for err in e.errors], None
    errors = [{**err, "message": bilingual(err["message"])} for err in result.errors]
    note = ODD_ENCODING if result.encoding not in ("utf-8", "cp1252") else None
    return result, errors, note


def _show(request: Request, viewer: Viewer, org: Organisation, raw: bytes, filename: str,
          result, errors, note, status_code: int = 200, extra: str | None = None) -> Response:
    ok = result is not None and not errors and result.visits and note in (None, ODD_ENCODING)
    return page(request, "import.html", viewer, status_code, org=org,
                org_tz=ZoneInfo(org.timezone), result=result, errors=errors, note=note, extra=extra, filename=filename, ok=ok,
                data=base64.b64encode(raw).decode() if ok else "",
                sig=sign({"sha256": hashlib.sha256(raw).hexdigest()}) if ok else "",
                form_id=forms.new_form_id())


@router.get("/planning/import")
def import_page(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    return page(request, "import.html", viewer, org=_org(session, viewer), result=None,
                errors=[], note=None, extra=None, filename=None, ok=False)


@router.post("/planning/import/preview")
async def preview(request: Request, session: SessionDep, viewer: PlannerPostDep,
                  file: Annotated[UploadFile, File()]) -> Response:
    org = _org(session, viewer)
    raw = await file.read(MAX_BYTES + 1)
    result, errors, note = _preview(session, org, raw)
    return _show(request, viewer, org, raw, file.filename or "", result, errors, note,
                 200 if result is not None and not errors else 422)


@router.post("/planning/import/confirm")
def confirm(request: Request, session: SessionDep, viewer: PlannerPostDep,
            data: Annotated[str, Form()], sig: Annotated[str, Form()],
            form_id: Annotated[str, Form()], filename: Annotated[str, Form()] = "") -> Response:
    org = _org(session, viewer)
    raw = base64.b64decode(data.encode(), validate=False)
    signed = unsign(sig) or {}
    if not tokens_match(signed.get("sha256"), hashlib.sha256(raw).hexdigest()):
        return _show(request, viewer, org, b"", filename, None, [],
                     N_("The preview was altered: upload the file again"), 400)
    with forms.once(form_id):
        if forms.earlier_result(session, viewer.who, form_id):
            return redirect("/planning", "already")
        result, errors, note = _preview(session, org, raw)
        if result is None or errors or not result.visits:
            return _show(request, viewer, org, raw, filename, result, errors, note, 409,
                         extra=NOTHING_SAVED)
        try:
            visits = planning_visits.create_many(session, org, result.visits, who=viewer.who,
                                                 role=viewer.role)
        except PlanningError as e:
            session.rollback()
            return _show(request, viewer, org, raw, filename, result, [], e.message, e.status,
                         extra=NOTHING_SAVED)
        audit.record(session, viewer.who, "import", f"organisation:{org.id}", role=viewer.role,
                     detail={"file": filename[:200], "created": len(visits),
                             "visit_ids": [v.id for v in visits], "form_id": form_id})
        session.commit()
    day = result.visits[0]["start"].astimezone(ZoneInfo(org.timezone)).date().isoformat()
    return redirect(f"/planning?day={day}", "imported")
