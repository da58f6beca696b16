"""Webhooks (fleet.webhooks, fleet.webhook_delivery) through the real outbox dispatcher to a real
HTTP server in this process: endpoint rules, who is told of what, the signature, retries and
dead letters, order per endpoint, disabled and deleted endpoints, and the events raised by
matching."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet import outbox, webhook_delivery, webhooks
from fleet.config import Settings
from fleet.db import session_factory
from fleet.ingest import handle_clock
from fleet.matching import match_pending
from fleet.models import Outbox, Visit
from tests.fleet.conftest import NOW, TS, _clock, _event
from tests.hooks.conftest import Receiver

T0 = datetime.now(timezone.utc) + timedelta(days=1)  # after the rows, queued at the real now


def settings(database_url, **kw) -> Settings:
    return Settings(database_url=database_url, smtp_host=None, **kw)


def deliveries(session) -> list[Outbox]:
    session.expire_all()
    return list(session.scalars(select(Outbox).where(Outbox.channel == "webhook")
                                .order_by(Outbox.id)))


def planned(session, agency, hour: int = 9) -> Visit:
    v = Visit(organisation_id=agency["org"].id, client_id=agency["clients"][0].id,
              caregiver_id=agency["caregivers"][0].id,
              planned_start=NOW.replace(hour=hour), planned_end=NOW.replace(hour=hour + 1))
    session.add(v)
    session.flush()
    return v


@pytest.mark.parametrize("url", ["ftp://erp.agence.fr/x", "file:///etc/passwd", "javascript:1",
                                 "gopher://h/", "https://", "erp.agence.fr/hook", "",
                                 "https://user:pw@erp.agence.fr/", "https://a b.fr/",
                                 "https://erp.agence.fr/" + "x" * 400])
def test_only_plain_http_or_https_urls_are_taken(url):
    with pytest.raises(webhooks.WebhookRefused) as refused:
        webhooks.check_url(url)
    assert "·" in str(refused.value)  # in English and French


def test_good_urls_and_events():
    assert webhooks.check_url(" https://erp.agence.fr/telegest?x=1 ") == \
        "https://erp.agence.fr/telegest?x=1"
    assert webhooks.check_url("http://10.0.0.5:8080/h") == "http://10.0.0.5:8080/h"
    assert webhooks.check_events(["clock.out", "visit.created", "clock.out"]) == \
        ["visit.created", "clock.out"]
    for bad in ([], ["visit.deleted"], ["visit.created", "x"]):
        with pytest.raises(webhooks.WebhookRefused):
            webhooks.check_events(bad)


def test_a_bad_endpoint_changes_nothing(session, hooked):
    agency, endpoint, _ = hooked
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.create(session, agency["org"].id, "ftp://x/", ["anomaly"])
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.change(endpoint, events=["nope"])
    session.rollback()
    assert [e.url for e in webhooks.endpoints(session, agency["org"].id)] == [endpoint.url]
    assert len(endpoint.events) == 6


def test_signature_as_documented():
    body = b'{"id":"evt_1","type":"visit.created"}'
    header = webhook_delivery.sign("whsec_abc", 1764979200, body)
    # HMAC-SHA256 of "1764979200." + body, keyed by the secret (computed independently)
    import hashlib
    import hmac
    expected = hmac.new(b"whsec_abc", b"1764979200." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1764979200,v1={expected}"
    assert webhook_delivery.verify("whsec_abc", header, body, now=1764979200 + 299)
    assert not webhook_delivery.verify("whsec_abc", header, body, now=1764979200 + 301)
    assert not webhook_delivery.verify("whsec_abd", header, body, now=1764979200)
    assert not webhook_delivery.verify("whsec_abc", header, body + b" ", now=1764979200)
    assert not webhook_delivery.verify("whsec_abc", "v1=" + expected, body, now=1764979200)


def test_emit_queues_for_subscribed_active_endpoints_of_the_organisation(session, hooked,
                                                                         receiver):
    agency, endpoint, _ = hooked
    org_id = agency["org"].id
    only_cancel, _ = webhooks.create(session, org_id, receiver.url + "/2", ["visit.cancelled"])
    off, _ = webhooks.create(session, org_id, receiver.url + "/3", ["visit.created"])
    webhooks.change(off, active=False)
    other = make_other_org(session)
    webhooks.create(session, other, receiver.url + "/4", ["visit.created"])
    visit = planned(session, agency)
    assert webhooks.visit_created(session, visit) == 1
    assert webhooks.visit_changed(session, visit, {}) == 0  # nothing changed: nothing sent
    visit.status = "cancelled"
    assert webhooks.visit_changed(session, visit, {"status": "cancelled"}) == 2
    session.commit()
    rows = deliveries(session)
    assert [(r.recipient, r.subject) for r in rows] == [
        (endpoint.url, "visit.created"), (endpoint.url, "visit.cancelled"),
        (only_cancel.url, "visit.cancelled")]
    created, cancelled, cancelled2 = (json.loads(r.body) for r in rows)
    assert created["type"] == "visit.created" and created["organisation_id"] == org_id
    assert created["id"].startswith("evt_") and created["created"]
    assert created["data"] == {
        "visit_id": visit.id, "client_id": visit.client_id, "caregiver_id": visit.caregiver_id,
        "service_id": None, "planned_start": "2026-11-23T09:00:00+00:00",
        "planned_end": "2026-11-23T10:00:00+00:00", "status": "planned"}
    assert cancelled["data"]["changed"] == ["status"] and cancelled["data"]["status"] == \
        "cancelled"
    assert cancelled2["id"] == cancelled["id"]  # one event, one id, whoever receives it
    with pytest.raises(ValueError):
        webhooks.emit(session, org_id, "visit.deleted", {})


def make_other_org(session) -> int:
    from fleet.models import Organisation

    org = Organisation(name="Autre agence")
    session.add(org)
    session.flush()
    return org.id


def test_delivered_signed_to_a_real_server(engine, session, database_url, hooked, receiver):
    agency, endpoint, secret = hooked
    visit = planned(session, agency)
    webhooks.visit_created(session, visit)
    session.commit()
    counts = outbox.dispatch_due(session_factory(engine), settings(database_url), T0)
    assert counts["sent"] == 1
    ((headers, body),) = receiver.received
    assert headers["Content-Type"] == "application/json"
    assert headers["Telegest-Event"] == "visit.created"
    assert webhook_delivery.verify(secret, headers["Telegest-Signature"], body)
    event = json.loads(body)
    assert headers["Telegest-Delivery"] == event["id"]
    assert event["data"]["visit_id"] == visit.id
    (row,) = deliveries(session)
    assert (row.state, row.attempts, row.last_error) == ("sent", 1, None)


def test_a_failing_endpoint_backs_off_then_dead_then_replayed(engine, session, database_url,
                                                              hooked, receiver):
    agency, endpoint, secret = hooked
    receiver.status = 500
    webhooks.visit_created(session, planned(session, agency))
    session.commit()
    s = settings(database_url, outbox_max_attempts=2, outbox_backoff_s=30)
    sessions = session_factory(engine)
    assert outbox.dispatch_due(sessions, s, T0)["retry"] == 1
    (row,) = deliveries(session)
    assert row.state == "pending" and row.next_attempt_at == T0 + timedelta(seconds=30)
    assert row.last_error.startswith("HTTP 500")
    assert outbox.dispatch_due(sessions, s, T0 + timedelta(seconds=29)) == {}
    assert outbox.dispatch_due(sessions, s, T0 + timedelta(seconds=30))["dead"] == 1
    (row,) = deliveries(session)
    assert row.state == "dead" and row.attempts == 2 and len(receiver.received) == 2
    receiver.status = 204
    assert outbox.retry(session, row, T0 + timedelta(hours=1))
    session.commit()
    assert outbox.dispatch_due(sessions, s, T0 + timedelta(hours=1))["sent"] == 1
    assert [e["type"] for e in receiver.events(secret)] == ["visit.created"] * 3


def test_410_gone_is_dead_at_once_and_redirects_are_not_followed(engine, session, database_url,
                                                                 hooked, receiver):
    agency, _, _ = hooked
    receiver.status = 410
    webhooks.visit_created(session, planned(session, agency))
    session.commit()
    sessions = session_factory(engine)
    assert outbox.dispatch_due(sessions, settings(database_url), T0)["dead"] == 1
    receiver.status = 302
    webhooks.visit_created(session, planned(session, agency, 11))
    session.commit()
    assert outbox.dispatch_due(sessions, settings(database_url), T0)["retry"] == 1
    assert deliveries(session)[-1].last_error.startswith("HTTP 302")


def test_an_endpoint_down_gets_everything_afterwards_in_order(engine, session, database_url,
                                                              hooked, receiver):
    agency, endpoint, secret = hooked
    receiver.stop()  # nothing listens: connections are refused
    visits = [planned(session, agency, h) for h in (8, 9, 10)]
    for v in visits:
        webhooks.visit_created(session, v)
    session.commit()
    s = settings(database_url, outbox_backoff_s=10)
    sessions = session_factory(engine)
    counts = outbox.dispatch_due(sessions, s, T0)
    assert (counts["retry"], counts["held"], counts["sent"]) == (1, 2, 0)
    # the later ones are due, but wait behind the first while it backs off
    webhooks.visit_changed(session, visits[0], {"planned_end": visits[0].planned_end})
    session.commit()
    assert outbox.dispatch_due(sessions, s, T0 + timedelta(seconds=5)) == {}  # all wait
    receiver.start()  # back up
    counts = outbox.dispatch_due(sessions, s, T0 + timedelta(seconds=10))
    assert counts["sent"] == 4
    got = receiver.events(secret)
    assert [(e["type"], e["data"]["visit_id"]) for e in got] == [
        ("visit.created", visits[0].id), ("visit.created", visits[1].id),
        ("visit.created", visits[2].id), ("visit.modified", visits[0].id)]
    assert [r.state for r in deliveries(session)] == ["sent"] * 4


def test_another_endpoint_is_not_held_by_a_failing_one(engine, session, database_url, hooked,
                                                       receiver):
    agency, _, _ = hooked
    receiver.status = 503
    healthy = Receiver().start()
    try:
        webhooks.create(session, agency["org"].id, healthy.url, ["visit.created"])
        for h in (8, 9):
            webhooks.visit_created(session, planned(session, agency, h))
        session.commit()
        counts = outbox.dispatch_due(session_factory(engine), settings(database_url), T0)
        assert (counts["retry"], counts["held"], counts["sent"]) == (1, 1, 2)
        assert len(healthy.received) == 2
    finally:
        healthy.stop()


def test_disabled_or_deleted_endpoints_are_not_posted_to(engine, session, database_url, hooked,
                                                         receiver):
    agency, endpoint, _ = hooked
    webhooks.visit_created(session, planned(session, agency))
    webhooks.change(endpoint, active=False)
    session.commit()
    sessions = session_factory(engine)
    assert outbox.dispatch_due(sessions, settings(database_url), T0)["dead"] == 1
    assert "disabled" in deliveries(session)[0].last_error and receiver.received == []
    assert webhooks.visit_created(session, planned(session, agency, 11)) == 0  # not queued
    webhooks.change(endpoint, active=True)
    webhooks.visit_created(session, planned(session, agency, 12))
    session.commit()
    assert webhooks.delete(session, endpoint) == 1  # the waiting one becomes a dead letter
    session.commit()
    assert [r.state for r in deliveries(session)] == ["dead", "dead"]
    assert "deleted" in deliveries(session)[1].last_error
    assert outbox.dispatch_due(sessions, settings(database_url), T0) == {}
    assert receiver.received == []


def test_matching_tells_of_clock_in_out_and_anomalies(engine, session, database_url, hooked,
                                                      receiver):
    agency, endpoint, secret = hooked
    visit = planned(session, agency)
    session.commit()
    handle_clock(session, "r1", _clock(_event(1, "04A1B2C3D4E5F6", "in", TS + 60),
                                       _event(2, "04A1B2C3D4E5F6", "out", TS + 3500),
                                       _event(3, "0499999999", "in", TS + 3600)), NOW)
    session.commit()
    match_pending(session)
    session.commit()
    assert outbox.dispatch_due(session_factory(engine), settings(database_url), T0)["sent"] == 4
    got = [(e["type"], e["data"].get("visit_id"), e["data"].get("kind"),
            e["data"].get("match_status")) for e in receiver.events(secret)]
    assert got == [("clock.in", visit.id, None, "matched"),
                   ("clock.out", visit.id, None, "matched"),
                   ("clock.in", None, None, "anomaly"),
                   ("anomaly", None, "unknown_badge", None)]
    first = receiver.events(secret)[0]["data"]
    assert first["time"] == "2026-11-23T09:01:00+00:00" and first["proof_level"]
    assert "04A1B2C3D4E5F6" not in json.dumps(receiver.events(secret))  # no card UID leaves


def test_a_backlog_larger_than_a_batch_drains_in_order(engine, session, database_url, hooked,
                                                      receiver, monkeypatch):
    """The rows waiting behind a failed one never fill the dispatcher's batch: the failed one
    is picked up when due and the backlog follows it, batch after batch."""
    agency, endpoint, secret = hooked
    monkeypatch.setattr(outbox, "BATCH", 4)
    receiver.stop()
    visits = [planned(session, agency, h) for h in range(6, 17)]
    for v in visits:
        webhooks.visit_created(session, v)
    session.commit()
    s = settings(database_url, outbox_backoff_s=10)
    sessions = session_factory(engine)
    assert outbox.dispatch_due(sessions, s, T0)["retry"] == 1
    # an e-mail queued meanwhile is not starved by the held webhooks
    outbox.enqueue_email(session, organisation_id=agency["org"].id, to="a@b.fr", subject="s",
                         body="b", dedupe_key="m1")
    session.commit()
    counts = outbox.dispatch_due(sessions, s, T0 + timedelta(seconds=5))
    assert counts["held"] == 0 and counts["sent"] == 0  # nothing sendable (no SMTP either)
    receiver.start()
    passes = 0
    while len(receiver.received) < len(visits) and passes < 10:
        outbox.dispatch_due(sessions, s, T0 + timedelta(seconds=10))
        passes += 1
    assert passes == 3  # 11 deliveries, 4 a batch
    assert [e["data"]["visit_id"] for e in receiver.events(secret)] == [v.id for v in visits]


def test_an_endpoint_that_never_answers_times_out_and_is_tried_again(
        engine, session, database_url, hooked, monkeypatch):
    """A server that takes the connection and says nothing: the dispatcher gives up after the
    sender's timeout (shortened here) and the delivery waits for its next try. The API and the
    ingest only ever wrote the row."""
    import socket

    agency, endpoint, _ = hooked
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepted by the kernel, never read nor answered
    endpoint.url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    monkeypatch.setattr(webhook_delivery, "TIMEOUT_S", 0.5)
    try:
        webhooks.visit_created(session, planned(session, agency))
        session.commit()
        (row,) = deliveries(session)
        assert row.state == "pending" and row.attempts == 0  # queued, not sent, by the caller
        counts = outbox.dispatch_due(session_factory(engine), settings(database_url), T0)
        assert counts["retry"] == 1
        (row,) = deliveries(session)
        assert row.state == "pending" and "timed out" in row.last_error
    finally:
        silent.close()
