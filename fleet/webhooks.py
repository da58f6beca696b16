"""Webhooks: an agency's endpoints and the events they are told of (docs/integrations.md).

`emit(session, org_id, event, data)` is the one call the places that change visits, store
clock events or raise anomalies make: it writes one outbox row per subscribed endpoint in the
caller's transaction (fleet.outbox), so a delivery exists exactly when the change was committed,
and the request or the ingest batch never waits for an HTTP server. The outbox's dispatcher
signs and posts them (fleet.webhook_delivery), one endpoint's deliveries in the order they were
queued. The endpoint rules (an http(s) URL, known events, a secret shown once) live here for the
API, the console and the tests alike.
"""
from __future__ import annotations

import json
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fleet import outbox
from fleet.models import WEBHOOK_EVENTS, Outbox, Visit, WebhookEndpoint
from fleet.types import utcnow

SECRET_PREFIX = "whsec_"
MAX_URL = 400  # the outbox's recipient column


class WebhookRefused(ValueError):
    """A bad endpoint (its URL, its events): the message is shown as is, in English and
    French."""


def check_url(raw: str) -> str:
    """An absolute http:// or https:// URL with a host and no credentials in it."""
    url = (raw or "").strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("the URL must start with http:// or https:// and name a host · "
                             "l'adresse doit commencer par http:// ou https:// et nommer un "
                             "serveur")
    if parts.username or parts.password:
        raise WebhookRefused("no user name or password in the URL: the signature proves the "
                             "sender · pas d'identifiant ni de mot de passe dans l'adresse : "
                             "la signature prouve l'expéditeur")
    if len(url) > MAX_URL or any(c.isspace() for c in url):
        raise WebhookRefused(f"the URL must be one line of at most {MAX_URL} characters · "
                             f"l'adresse doit tenir en une ligne de {MAX_URL} caractères au plus")
    return url


def check_events(chosen) -> list[str]:
    """At least one known event, in the order of WEBHOOK_EVENTS."""
    chosen = set(chosen or ())
    unknown = sorted(chosen - set(WEBHOOK_EVENTS))
    if unknown:
        raise WebhookRefused(f"unknown event(s) {', '.join(unknown)}: choose among "
                             f"{', '.join(WEBHOOK_EVENTS)} · événement(s) inconnu(s)")
    if not chosen:
        raise WebhookRefused("choose at least one event · choisissez au moins un événement")
    return [e for e in WEBHOOK_EVENTS if e in chosen]


def create(session: Session, organisation_id: int, url: str, events, description: str = "",
           who: str | None = None) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret, which is shown this once (the caller audits, commits)."""
    secret = SECRET_PREFIX + secrets.token_hex(32)
    endpoint = WebhookEndpoint(organisation_id=organisation_id, url=check_url(url),
                               events=check_events(events), secret=secret,
                               description=(description or "").strip()[:200], created_by=who)
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def change(endpoint: WebhookEndpoint, *, events=None, active: bool | None = None) -> dict:
    """Set the events and/or the active flag; returns what changed (for the audit log)."""
    changed: dict = {}
    if events is not None:
        events = check_events(events)
        if events != endpoint.events:
            endpoint.events = changed["events"] = events
    if active is not None and active != endpoint.active:
        endpoint.active = changed["active"] = active
    return changed


def delete(session: Session, endpoint: WebhookEndpoint, now: datetime | None = None) -> int:
    """Delete the endpoint; its deliveries still waiting become dead letters (kept, visible).
    Returns how many."""
    stopped = session.execute(
        update(Outbox).where(Outbox.channel == "webhook", Outbox.state == "pending",
                             Outbox.dedupe_key.like(f"{_key_prefix(endpoint.id)}%"))
        .values(state="dead", last_error="endpoint deleted · destination supprimée")
        .execution_options(synchronize_session=False)).rowcount
    session.delete(endpoint)
    return stopped


def endpoints(session: Session, organisation_id: int) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.organisation_id == organisation_id).order_by(WebhookEndpoint.id)))


def deliveries(session: Session, endpoint_id: int, limit: int = 20) -> list[Outbox]:
    """The endpoint's deliveries, newest first."""
    return list(session.scalars(select(Outbox).where(
        Outbox.channel == "webhook", Outbox.dedupe_key.like(f"{_key_prefix(endpoint_id)}%"))
        .order_by(Outbox.id.desc()).limit(limit)))


def is_delivery_of(row: Outbox, endpoint_id: int) -> bool:
    return row.channel == "webhook" and (row.dedupe_key or "").startswith(
        _key_prefix(endpoint_id))


def _key_prefix(endpoint_id: int) -> str:
    return f"wh:{endpoint_id}:"


# -- emitting ---------------------------------------------------------------------------------

def emit(session: Session, org_id: int, event: str, data: dict,
         now: datetime | None = None) -> int:
    """Queue `event` for every active endpoint of the organisation that chose it, in the
    caller's transaction; returns how many deliveries were queued."""
    return emit_many(session, [(org_id, event, data)], now)


def listening(session: Session, org_ids) -> set[int]:
    """Those of `org_ids` with an active endpoint: the ingest path builds events for them only."""
    return set(session.scalars(select(WebhookEndpoint.organisation_id).distinct().where(
        WebhookEndpoint.organisation_id.in_(set(org_ids)), WebhookEndpoint.active.is_(True))))


def emit_many(session: Session, items: list[tuple[int, str, dict]],
              now: datetime | None = None) -> int:
    """`emit` for many events at once (an import, an ingest batch): one query for the
    endpoints, then one row per (event, subscribed endpoint), in the order given."""
    if not items:
        return 0
    if any(event not in WEBHOOK_EVENTS for _, event, _ in items):
        raise ValueError(f"unknown webhook event in {sorted({e for _, e, _ in items})}")
    now = now or utcnow()
    hooks: dict[int, list[WebhookEndpoint]] = {}
    for ep in session.scalars(select(WebhookEndpoint).where(
            WebhookEndpoint.organisation_id.in_({org for org, _, _ in items}),
            WebhookEndpoint.active.is_(True)).order_by(WebhookEndpoint.id)):
        hooks.setdefault(ep.organisation_id, []).append(ep)
    queued = 0
    for org_id, event, data in items:
        targets = [ep for ep in hooks.get(org_id, ()) if event in ep.events]
        if not targets:
            continue
        event_id = "evt_" + secrets.token_hex(12)
        body = json.dumps({"id": event_id, "type": event, "created": now.isoformat(),
                           "organisation_id": org_id, "data": data},
                          ensure_ascii=False, separators=(",", ":"), default=_json)
        for ep in targets:
            outbox.enqueue(session, channel="webhook", organisation_id=org_id,
                           recipient=ep.url, subject=event, body=body,
                           payload={"endpoint_id": ep.id, "event_id": event_id},
                           dedupe_key=f"{_key_prefix(ep.id)}{event_id}", now=now)
            queued += 1
    return queued


def _json(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


VISIT_FIELDS = ("client_id", "caregiver_id", "service_id", "planned_start", "planned_end",
                "status")


def visit_data(visit: Visit, changed=None) -> dict:
    """A visit as the visit.* events carry it (docs/integrations.md)."""
    data = {"visit_id": visit.id, **{f: getattr(visit, f) for f in VISIT_FIELDS}}
    if changed is not None:
        data["changed"] = sorted(changed)
    return data


def visit_created(session: Session, visits) -> int:
    """visit.created for each of `visits` (flushed: they have ids)."""
    if isinstance(visits, Visit):
        visits = [visits]
    return emit_many(session, [(v.organisation_id, "visit.created", visit_data(v))
                               for v in visits])


def visit_changed(session: Session, visit: Visit, changes: dict) -> int:
    """visit.cancelled when `changes` cancelled it, else visit.modified; nothing when nothing
    changed."""
    if not changes:
        return 0
    event = "visit.cancelled" if changes.get("status") == "cancelled" else "visit.modified"
    return emit(session, visit.organisation_id, event, visit_data(visit, changes))
