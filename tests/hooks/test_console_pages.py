"""The console's /webhooks and /apikeys pages (server-rendered, through the app): the secret
shown once, refusals, roles, replay of a dead delivery, a visit changed in the console telling
the endpoint, keys listed and revoked."""
from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from fleet.keys import create_api_key
from fleet.models import ApiKey, AuditLog, Organisation, Outbox, Visit, WebhookEndpoint
from tests.console.conftest import app, as_role, csrf_of, db  # noqa: F401 (fixtures)


def add(client, url="https://erp.agence.fr/telegest", events=("visit.modified",), **extra):
    token = csrf_of(client.get("/webhooks").text)
    return client.post("/webhooks", data={"csrf": token, "url": url, "events": list(events),
                                          "description": "ERP", **extra})


def test_add_an_endpoint_the_secret_shown_once(as_role, db):
    manager = as_role("manager")
    page = manager.get("/webhooks")
    assert page.status_code == 200 and "No endpoint yet" in page.text
    r = add(manager, events=("visit.modified", "visit.cancelled"))
    assert r.status_code == 200
    secret = re.search(r'id="webhook-secret">(whsec_[0-9a-f]+)<', r.text).group(1)
    with db() as s:
        (hook,) = s.scalars(select(WebhookEndpoint)).all()
        assert hook.secret == secret and hook.events == ["visit.modified", "visit.cancelled"]
    again = manager.get("/webhooks")
    assert "https://erp.agence.fr/telegest" in again.text and secret not in again.text


def test_bad_endpoints_are_refused_and_nothing_is_saved(as_role, db):
    manager = as_role("manager")
    r = add(manager, url="ftp://erp.agence.fr/")
    assert r.status_code == 422 and "http:// or https://" in r.text and "ftp://erp" in r.text
    r = add(manager, events=())
    assert r.status_code == 422 and "at least one event" in r.text
    token = csrf_of(manager.get("/webhooks").text)
    assert manager.post("/webhooks", data={"csrf": "forged", "url": "https://x.fr/",
                                           "events": ["anomaly"]}).status_code == 403
    assert token
    with db() as s:
        assert s.scalars(select(WebhookEndpoint)).all() == []
    technician = as_role("technician")
    assert technician.get("/webhooks").status_code == 403


def test_events_disable_a_console_change_replay_delete(as_role, db):
    manager = as_role("manager")
    add(manager, events=("visit.created",))
    with db() as s:
        hook_id = s.scalars(select(WebhookEndpoint.id)).one()
        visit = s.scalars(select(Visit).order_by(Visit.id)).first()
    token = csrf_of(manager.get("/webhooks").text)
    r = manager.post(f"/webhooks/{hook_id}/events",
                     data={"csrf": token, "events": ["visit.modified", "visit.cancelled"]})
    assert r.status_code == 200 and "Saved" in r.text

    # a visit modified in the console's planning form: a visit.modified delivery waits
    form = manager.get(f"/planning/visits/{visit.id}").text
    with db() as s:
        tz = ZoneInfo(s.get(Organisation, visit.organisation_id).timezone)
    start = visit.planned_start.astimezone(tz)
    r = manager.post(f"/planning/visits/{visit.id}", data={
        "csrf": csrf_of(form), "client_id": visit.client_id, "caregiver_id": visit.caregiver_id,
        "service_id": visit.service_id or "", "day": start.date().isoformat(),
        "start": start.strftime("%H:%M"), "end": "23:30", "status": visit.status})
    assert r.status_code in (200, 303), r.text
    with db() as s:
        (row,) = s.scalars(select(Outbox).where(Outbox.channel == "webhook")).all()
        assert row.subject == "visit.modified" and f'"visit_id":{visit.id}' in row.body
        s.execute(update(Outbox).values(state="dead", last_error="HTTP 500"))
        s.commit()
    page = manager.get("/webhooks").text
    assert "visit.modified" in page and "HTTP 500" in page and "Replay" in page
    r = manager.post(f"/webhooks/{hook_id}/deliveries/{row.id}/replay",
                     data={"csrf": csrf_of(page)})
    assert r.status_code == 200 and "back in the queue" in r.text
    r = manager.post(f"/webhooks/{hook_id}/deliveries/{row.id}/replay",
                     data={"csrf": csrf_of(page)})
    assert "Only a failed delivery" in r.text  # pending now, not dead

    r = manager.post(f"/webhooks/{hook_id}/active", data={"csrf": token, "active": "0"})
    assert ">disabled<" in r.text and ">Enable<" in r.text and "Activer" not in r.text
    r = manager.post(f"/webhooks/{hook_id}/delete", data={"csrf": token})
    assert r.status_code == 200 and "No endpoint yet" in r.text
    with db() as s:
        assert s.scalars(select(WebhookEndpoint)).all() == []
        assert s.get(Outbox, row.id).state == "dead"  # the waiting delivery is kept, stopped
        actions = list(s.scalars(select(AuditLog.action).where(
            AuditLog.target.like("webhook:%")).order_by(AuditLog.id)))
        assert actions == ["create", "update", "update", "delete"]


def test_api_keys_listed_and_revoked_by_admins(as_role, db):
    with db() as s:
        org_id = s.scalars(select(Organisation.id)).first()
        create_api_key(s, "manager", "ERP paie", organisation_id=org_id, daily_quota=500)
        create_api_key(s, "admin", "operator")  # of no agency: not the agency admin's to see
        s.commit()
        key_id = s.scalars(select(ApiKey.id).where(ApiKey.label == "ERP paie")).one()
    assert as_role("manager").get("/apikeys").status_code == 403
    admin = as_role("admin")
    page = admin.get("/apikeys")
    assert page.status_code == 200 and "ERP paie" in page.text and "0 / 500" in page.text
    assert "operator" not in page.text
    r = admin.post(f"/apikeys/{key_id}/revoke", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "API key revoked" in r.text
    with db() as s:
        assert s.get(ApiKey, key_id).revoked
    row = re.search(rf'<tr data-key="{key_id}">.*?</tr>', r.text, re.S).group(0)
    assert ">revoked<" in row and "Revoke" not in row
