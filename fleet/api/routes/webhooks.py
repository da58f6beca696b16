"""Webhook endpoints of the key's organisation (fleet.webhooks, docs/integrations.md): add one
(its secret is in that answer only), change its events, disable, delete, see its deliveries and
send a dead one again. Managers and admins."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from fleet import outbox, webhooks
from fleet.api import data
from fleet.api.deps import PLANNERS, KeyDep, SessionDep
from fleet.models import WEBHOOK_EVENTS, Outbox, WebhookEndpoint
from fleet.types import utcnow

router = APIRouter(dependencies=[PLANNERS], tags=["webhooks"])


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000, examples=["https://erp.agence.fr/telegest"])
    events: list[str] = Field(min_length=1, max_length=len(WEBHOOK_EVENTS),
                              examples=[["visit.created", "visit.modified"]])
    description: str = Field("", max_length=200)


class WebhookPatch(BaseModel):
    events: list[str] | None = Field(None, min_length=1, max_length=len(WEBHOOK_EVENTS))
    active: bool | None = None


class WebhookOut(BaseModel):
    id: int
    organisation_id: int
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: datetime

    model_config = {"from_attributes": True}


class WebhookCreated(WebhookOut):
    secret: str = Field(description="signs every delivery; shown in this answer only")


class DeliveryOut(BaseModel):
    id: int
    event: str = Field(validation_alias="subject")
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None

    model_config = {"from_attributes": True}


def _endpoint(session, key, endpoint_id: int) -> WebhookEndpoint:
    return data.get_scoped(session, key, WebhookEndpoint, endpoint_id)


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(session: SessionDep, key: KeyDep, organisation_id: int | None = None):
    org = data.org_for_write(session, key, organisation_id)
    return webhooks.endpoints(session, org.id)


@router.post("/webhooks", status_code=201, response_model=WebhookCreated)
def create_webhook(body: WebhookIn, session: SessionDep, key: KeyDep,
                   organisation_id: int | None = None):
    """The URL must be http:// or https://; the secret is in this answer only."""
    org = data.org_for_write(session, key, organisation_id)
    try:
        endpoint, secret = webhooks.create(session, org.id, body.url, body.events,
                                           body.description, who=data.who(key))
    except webhooks.WebhookRefused as e:
        session.rollback()
        raise HTTPException(422, str(e)) from None
    data.audit(session, key, "create", f"webhook:{endpoint.id}",
               {"url": endpoint.url, "events": endpoint.events})
    session.commit()
    return {**WebhookOut.model_validate(endpoint).model_dump(), "secret": secret}


@router.patch("/webhooks/{endpoint_id}", response_model=WebhookOut)
def patch_webhook(endpoint_id: int, body: WebhookPatch, session: SessionDep, key: KeyDep):
    endpoint = _endpoint(session, key, endpoint_id)
    try:
        changed = webhooks.change(endpoint, events=body.events, active=body.active)
    except webhooks.WebhookRefused as e:
        session.rollback()
        raise HTTPException(422, str(e)) from None
    if changed:
        data.audit(session, key, "update", f"webhook:{endpoint.id}", changed)
    session.commit()
    return endpoint


@router.delete("/webhooks/{endpoint_id}", status_code=204)
def delete_webhook(endpoint_id: int, session: SessionDep, key: KeyDep) -> None:
    """Its deliveries still waiting become dead letters."""
    endpoint = _endpoint(session, key, endpoint_id)
    stopped = webhooks.delete(session, endpoint)
    data.audit(session, key, "delete", f"webhook:{endpoint_id}",
               {"url": endpoint.url, "stopped_deliveries": stopped})
    session.commit()


@router.get("/webhooks/{endpoint_id}/deliveries", response_model=list[DeliveryOut])
def list_deliveries(endpoint_id: int, session: SessionDep, key: KeyDep):
    """The 50 newest, newest first."""
    return webhooks.deliveries(session, _endpoint(session, key, endpoint_id).id, limit=50)


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay",
             response_model=DeliveryOut)
def replay_delivery(endpoint_id: int, delivery_id: int, session: SessionDep, key: KeyDep):
    """Send a dead delivery again (from its first try); 409 if it is not dead."""
    endpoint = _endpoint(session, key, endpoint_id)
    row = session.get(Outbox, delivery_id)
    if row is None or not webhooks.is_delivery_of(row, endpoint.id):
        raise HTTPException(404, f"delivery {delivery_id} not found")
    if not outbox.retry(session, row, utcnow()):
        raise HTTPException(409, f"delivery {delivery_id} is {row.state}, not dead")
    data.audit(session, key, "retry", f"outbox:{row.id}", {"webhook": endpoint.id})
    session.commit()
    return row
