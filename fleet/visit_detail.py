"""Everything about one visit, as JSON-able data: what was planned, what was clocked (raw) and
what is retained, what happened at the home, and who changed what. Read by the API
(`GET /api/v1/visits/{id}`) and the console's visit page."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import audit
from fleet.corrections import CODES, current_retained, history, record_of, suggest_code
from fleet.models import (Anomaly, Caregiver, Client, ClockEvent, Device, Organisation, Service,
                          ServiceTask, Visit, VisitCorrection, VisitTaskCheck)
from fleet.retained import minutes
from fleet.validation import locked_visit, month_of, open_month


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _period(start: datetime | None, end: datetime | None) -> dict:
    return {"start": _iso(start), "end": _iso(end), "minutes": minutes(start, end)}


def _name(session: Session, model, id_: int | None) -> str | None:
    obj = session.get(model, id_) if id_ is not None else None
    return obj.name if obj is not None else None


def correction_dict(c: VisitCorrection) -> dict:
    return {"id": c.id, "code": c.code, "label": list(CODES.get(c.code, (c.code, c.code))),
            "arrival": _iso(c.arrival), "departure": _iso(c.departure), "why": c.why,
            "who": c.who, "role": c.role, "at": _iso(c.at), "before": c.before,
            "after": c.after, "supersedes_id": c.supersedes_id}


def visit_detail(session: Session, visit: Visit) -> dict:
    org = session.get(Organisation, visit.organisation_id)
    record = record_of(session, visit.id)
    events = session.execute(
        select(ClockEvent, Device.ident, Device.kind)
        .join(Device, Device.id == ClockEvent.device_id).where(ClockEvent.visit_id == visit.id).order_by(ClockEvent.device_ts, ClockEvent.id))
    actual = (record.actual_start, record.actual_end) if record else (None, None)
    retained = current_retained(visit, record, org)
    late = None
    if actual[0] is not None:
        late = max(0, minutes(visit.planned_start, actual[0]) or 0)
    fixes = history(session, visit.id)
    checks = {c.service_task_id: c for c in session.scalars(
        select(VisitTaskCheck).where(VisitTaskCheck.visit_id == visit.id))}
    tasks = []
    if visit.service_id is not None:
        for t in session.scalars(select(ServiceTask).where(
                ServiceTask.service_id == visit.service_id).order_by(ServiceTask.position)):
            c = checks.get(t.id)
            tasks.append({"id": t.id, "position": t.position, "label": t.label,
                          "done": bool(c and c.done), "comment": c.comment if c else None,
                          "at": _iso(c.at) if c else None})
    month = month_of(visit, org)
    mv = open_month(session, org.id, month)
    return {
        "id": visit.id,
        "organisation_id": visit.organisation_id,
        "status": visit.status,
        "planned": _period(visit.planned_start, visit.planned_end),
        "client": {"id": visit.client_id, "name": _name(session, Client, visit.client_id)},
        "caregiver": {"id": visit.caregiver_id,
                      "name": _name(session, Caregiver, visit.caregiver_id)},
        "service": {"id": visit.service_id, "name": _name(session, Service, visit.service_id)},
        "events": [{"id": e.id, "dir": e.dir, "method": e.method, "device": ident,
                    "device_kind": kind, "device_ts": _iso(e.device_ts),
                    "received_at": _iso(e.received_at), "time_quality": e.time_quality,
                    "reason": e.reason, "pos": e.pos, "match_status": e.match_status,
                    "tag_proof": e.tag_proof, "proof_level": e.proof_level,
                    "chosen_visit": (e.raw or {}).get("visit")}
                   for e, ident, kind in events],
        "anomalies": [{"id": a.id, "kind": a.kind, "detail": a.detail,
                       "resolved": a.resolved, "created_at": _iso(a.created_at)}
                      for a in session.scalars(select(Anomaly).where(
                          Anomaly.visit_id == visit.id).order_by(Anomaly.id))],
        "record_status": record.status if record else None,
        "raw": _period(*actual),
        "retained": _period(*retained),
        "late_min": late,
        "late": late is not None and late > org.tolerance_min,
        "suggested_code": suggest_code(visit, record),
        "correction": correction_dict(fixes[0]) if fixes else None,
        "corrections": [correction_dict(c) for c in fixes],
        "validation": {"validated": bool(record and record.validated_at),
                       "locked": locked_visit(session, visit, record),
                       "validated_at": _iso(record.validated_at) if record else None,
                       "validated_who": record.validated_who if record else None,
                       "month": month, "month_validated": mv is not None},
        "km": record.km if record else None,
        "expenses_cents": record.expenses_cents if record else None,
        "report": record.report if record else None,
        "tasks_done": [t for t in tasks if t["done"]],
        "tasks_not_done": [t for t in tasks if not t["done"]],
        "audit": [{"id": a.id, "at": _iso(a.at), "who": a.who, "role": a.role,
                   "action": a.action, "why": a.why, "detail": a.detail}
                  for a in session.scalars(audit.query(target=f"visit:{visit.id}"))],
    }
