"""Integrations: the webhooks page (/webhooks: add an endpoint, its secret shown once, choose its
events, disable, delete, see its recent deliveries and send a dead one again) and the API keys
page (/apikeys: list, revoke). Webhooks for managers and admins, keys for admins; every change
audited; the rules are fleet.webhooks' and fleet.keys', the API's too."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from fleet import audit, keys, outbox, quotas, webhooks
from fleet.console.auth import Viewer
from fleet.console.web import (Forbidden, Missing, PlannerDep, PlannerPostDep, PosterDep,
                               SessionDep, ViewerDep, organisation, page, redirect)
from fleet.models import ApiKey, Organisation, Outbox, WebhookEndpoint

router = APIRouter(include_in_schema=False)

EVENT_LABELS = {
    "visit.created": "visit created · intervention créée",
    "visit.modified": "visit modified · intervention modifiée",
    "visit.cancelled": "visit cancelled · intervention annulée",
    "clock.in": "clock-in · pointage d'arrivée",
    "clock.out": "clock-out · pointage de départ",
    "anomaly": "anomaly · anomalie",
    "sos": "SOS",
}
STATE_LABELS = {"pending": "waiting · en attente", "sent": "sent · envoyé",
                "dead": "failed · échec définitif"}


def _org(session: Session, viewer: Viewer) -> Organisation:
    org = organisation(session, viewer)
    if org is None:
        raise Missing("No organisation yet · Aucune structure")
    return org


def _endpoint(session: Session, org: Organisation, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.organisation_id != org.id:
        raise Missing("Not found · Introuvable")
    return endpoint


def _page(request: Request, session: Session, viewer: Viewer, org: Organisation,
          status_code: int = 200, **ctx) -> Response:
    tz = ZoneInfo(org.timezone)
    hooks = webhooks.endpoints(session, org.id)
    return page(request, "webhooks.html", viewer, status_code, org=org, hooks=hooks,
                deliveries={h.id: webhooks.deliveries(session, h.id, 10) for h in hooks},
                events=EVENT_LABELS, states=STATE_LABELS,
                fmt=lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if t else "",
                **{"values": {}, "error": None, "secret": None, "created": None, **ctx})


@router.get("/webhooks")
def webhooks_page(request: Request, session: SessionDep, viewer: PlannerDep) -> Response:
    return _page(request, session, viewer, _org(session, viewer))


@router.post("/webhooks")
async def add_webhook(request: Request, session: SessionDep, viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    form = await request.form()
    values = {"url": str(form.get("url", "")), "description": str(form.get("description", "")),
              "events": [str(e) for e in form.getlist("events")]}
    try:
        endpoint, secret = webhooks.create(session, org.id, values["url"], values["events"],
                                           values["description"], who=viewer.who)
    except webhooks.WebhookRefused as e:
        session.rollback()
        return _page(request, session, viewer, org, 422, values=values, error=str(e))
    audit.record(session, viewer.who, "create", f"webhook:{endpoint.id}", role=viewer.role,
                 detail={"url": endpoint.url, "events": endpoint.events})
    session.commit()
    # shown in this answer only: a reload or a later visit never shows it again
    return _page(request, session, viewer, org, secret=secret, created=endpoint.id)


@router.post("/webhooks/{endpoint_id}/events")
async def set_events(endpoint_id: int, request: Request, session: SessionDep,
                     viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    endpoint = _endpoint(session, org, endpoint_id)
    chosen = [str(e) for e in (await request.form()).getlist("events")]
    try:
        changed = webhooks.change(endpoint, events=chosen)
    except webhooks.WebhookRefused as e:
        session.rollback()
        return _page(request, session, viewer, org, 422, error=str(e))
    return _save(session, viewer, endpoint, changed)


@router.post("/webhooks/{endpoint_id}/active")
async def set_active(endpoint_id: int, request: Request, session: SessionDep,
                     viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    endpoint = _endpoint(session, org, endpoint_id)
    active = (await request.form()).get("active") == "1"
    return _save(session, viewer, endpoint, webhooks.change(endpoint, active=active))


def _save(session: Session, viewer: Viewer, endpoint: WebhookEndpoint, changed: dict) -> Response:
    if changed:
        audit.record(session, viewer.who, "update", f"webhook:{endpoint.id}", role=viewer.role,
                     detail=changed)
    session.commit()
    return redirect("/webhooks", "saved")


@router.post("/webhooks/{endpoint_id}/delete")
def delete_webhook(endpoint_id: int, session: SessionDep, viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    endpoint = _endpoint(session, org, endpoint_id)
    url = endpoint.url
    stopped = webhooks.delete(session, endpoint)
    audit.record(session, viewer.who, "delete", f"webhook:{endpoint_id}", role=viewer.role,
                 detail={"url": url, "stopped_deliveries": stopped})
    session.commit()
    return redirect("/webhooks", "deleted")


@router.post("/webhooks/{endpoint_id}/deliveries/{row_id}/replay")
def replay(endpoint_id: int, row_id: int, session: SessionDep,
           viewer: PlannerPostDep) -> Response:
    org = _org(session, viewer)
    endpoint = _endpoint(session, org, endpoint_id)
    row = session.get(Outbox, row_id)
    if row is None or not webhooks.is_delivery_of(row, endpoint.id):
        raise Missing("Not found · Introuvable")
    if not outbox.retry(session, row, datetime.now(timezone.utc)):
        return redirect("/webhooks", "not_dead_delivery")
    audit.record(session, viewer.who, "retry", f"outbox:{row_id}", role=viewer.role,
                 detail={"webhook": endpoint.id, "event": row.subject})
    session.commit()
    return redirect("/webhooks", "requeued")


# -- API keys ----------------------------------------------------------------------------------

def _admin(viewer: Viewer) -> Viewer:
    if viewer.role != "admin":
        raise Forbidden("Admins only · Réservé aux administrateurs")
    return viewer


def _visible_key(session: Session, viewer: Viewer, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or (viewer.organisation_id is not None
                       and key.organisation_id != viewer.organisation_id):
        raise Missing("Not found · Introuvable")
    return key


@router.get("/apikeys")
def apikeys_page(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    _admin(viewer)
    now = datetime.now(timezone.utc)
    rows = keys.list_keys(session, viewer.organisation_id)
    return page(request, "apikeys.html", viewer, keys=rows, now=now,
                used={k.id: quotas.used_today(session, k, now, request.app.state.quota_counter)
                      for k in rows},
                usable={k.id: keys.usable(k, now) for k in rows},
                fmt=lambda t: t.strftime("%Y-%m-%d %H:%M UTC") if t else "")


@router.post("/apikeys/{key_id}/revoke")
def revoke_key(key_id: int, session: SessionDep, viewer: PosterDep) -> Response:
    _admin(viewer)
    key = _visible_key(session, viewer, key_id)
    if keys.revoke(session, key):
        audit.record(session, viewer.who, "revoke", f"api_key:{key.id}", role=viewer.role,
                     detail={"name": key.label})
    session.commit()
    return redirect("/apikeys", "key_revoked")

