"""SOS end to end, with the worker as a process (its outbox dispatcher and planning pusher), a
real SMTP server in this process (aiosmtpd) and a push service in this process that checks the
VAPID signature and decrypts each payload per RFC 8291 (tests/push_service.py): a phone's SOS
is e-mailed to the on-call list; its acknowledgement in the API reaches the phone as a Web Push;
a change to the caregiver's planning too."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet import agency_settings
from fleet.brokerauth import NoBrokerAuth
from fleet.db import make_engine, session_factory
from fleet.models import Organisation
from tests.fleetops.conftest import make_api
from tests.gateway.conftest import enrol_phone
from tests.helpers import WorkerProcess, wait_until
from tests.push_service import PushService

pytestmark = pytest.mark.e2e
ONCALL = "astreinte@agence-demo.fr"


def test_sos_mailed_acknowledged_by_push_and_planning_pushed(demo, mosquitto, smtp, tmp_path,
                                                              monkeypatch):
    db_url, _ = demo
    monkeypatch.setenv("TELEGEST_WEBPUSH_ALLOW_HTTP", "1")  # the test's push service is http
    monkeypatch.setenv("TELEGEST_PUBLIC_URL", "http://console.test")
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        org = s.scalars(select(Organisation)).first()
        agency_settings.update(s, org, {"oncall_emails": ONCALL, "sos_number": "0612345678"},
                               who="test", role="admin")
        s.commit()
    engine.dispose()
    push = PushService().start()
    worker = WorkerProcess(db_url, mosquitto.host, mosquitto.port, tmp_path / "worker.log", env={
        "TELEGEST_SMTP_HOST": smtp.hostname, "TELEGEST_SMTP_PORT": str(smtp.port),
        "TELEGEST_SMTP_FROM": "alertes@agence-demo.fr", "TELEGEST_SMTP_STARTTLS": "0",
        "TELEGEST_OUTBOX_POLL_S": "1", "TELEGEST_WEBPUSH_ALLOW_HTTP": "1",
        "TELEGEST_PUBLIC_URL": "http://console.test"})
    api = make_api(db_url, NoBrokerAuth(), label="sos-e2e")
    try:
        with api:
            phone = enrol_phone(api)
            assert phone.post("/push", json=push.subscription()).status_code == 200
            assert phone.get("/config").status_code == 200  # the phone has its planning
            key = phone.get("/sos").json()["push_key"]
            worker.start().wait_ready()

            r = phone.post("/sos", json={"id": "e2e-sos-0001", "ts": int(time.time()),
                                         "pos": [48.8566, 2.3522, 15],
                                         "visit": phone.visit_id})
            assert r.status_code == 200 and r.json()["new"]
            (mail,) = wait_until(lambda: [m for m in smtp.handler.messages
                                          if "SOS" in m["Subject"]], 30, what="the SOS e-mail")
            assert mail["To"] == ONCALL and "Alice Martin" in mail["Subject"]
            text = mail.get_content()
            assert "Mme Jeanne Durand" in text and "48.85660, 2.35220 (± 15 m)" in text
            assert "http://console.test/sos" in text
            assert push.received == [], "nothing pushed before the acknowledgement"

            sos_id = r.json()["sos"]
            assert api.post(f"/api/v1/sos/{sos_id}/ack").status_code == 200
            (ack,) = wait_until(lambda: push.received, 30, what="the acknowledgement's push")
            assert ack["message"]["kind"] == "sos_ack" and ack["message"]["url"] == "/app/#/sos"
            assert "SOS" in ack["message"]["title"]
            assert ack["vapid_key"] == key, "signed with the key the app subscribed with"
            assert ack["headers"]["Urgency"] == "high"
            assert push.refused == []

            now = datetime.now(timezone.utc).replace(microsecond=0)
            r = api.patch(f"/api/v1/visits/{phone.visit_id}", json={
                "planned_end": (now + timedelta(hours=2)).isoformat()})
            assert r.status_code == 200, r.text
            planning = wait_until(lambda: [p for p in push.received
                                           if p["message"]["kind"] == "planning"], 60,
                                  what="the planning change's push")
            assert planning[0]["message"]["url"] == "/app/"
            assert len(smtp.handler.messages) == 1, "one SOS, one e-mail"
    finally:
        worker.stop()
        push.stop()
