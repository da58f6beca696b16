"""On a real mosquitto, with the worker as a process and a real SMTP server in this process
(aiosmtpd): a visit left unstarted is e-mailed late, then missed, to the on-call coordinator;
the caregiver's tap on the home's virtual reader closes both alerts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet import agency_settings
from fleet.db import make_engine, session_factory
from fleet.models import Alert, Badge, Caregiver, Device, Organisation, Visit
from tests.helpers import WorkerProcess, reader_for, wait_until

pytestmark = pytest.mark.e2e
IDENT = "demo-r1"
CARD = "04E2E0A1E2A1E2"
ONCALL = "astreinte@agence-demo.fr"


def test_late_then_missed_by_mail_then_closed_by_a_tap(demo, mosquitto, smtp, tmp_path):
    db_url, _ = demo
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    now = datetime.now(timezone.utc)
    with sessions() as s:
        reader = s.scalars(select(Device).where(Device.ident == IDENT)).one()
        org = s.get(Organisation, reader.organisation_id)
        carer = Caregiver(organisation_id=org.id, name="Émile Test")
        s.add(carer)
        s.flush()
        s.add(Badge(organisation_id=org.id, kind="caregiver_card", uid=CARD,
                    caregiver_id=carer.id))
        visit = Visit(organisation_id=org.id, client_id=reader.client_id,
                      caregiver_id=carer.id, planned_start=now - timedelta(minutes=20),
                      planned_end=now + timedelta(hours=1), created_at=now - timedelta(days=1))
        s.add(visit)
        agency_settings.update(s, org, {"late_after_min": 15, "missed_after_min": 60,
                                        "oncall_emails": ONCALL}, who="test", role="admin")
        s.commit()
        visit_id, org_id = visit.id, org.id
    link = f"http://console.test/visits/{visit_id}"

    def mails(kind: str) -> list:
        return [m for m in smtp.handler.messages
                if kind in m["Subject"] and link in m.get_content()]

    def alerts() -> dict[str, Alert]:
        with sessions() as s:
            return {a.kind: a for a in s.scalars(select(Alert).where(Alert.visit_id == visit_id))}

    worker = WorkerProcess(db_url, mosquitto.host, mosquitto.port, tmp_path / "worker.log", env={
        "TELEGEST_SMTP_HOST": smtp.hostname, "TELEGEST_SMTP_PORT": str(smtp.port),
        "TELEGEST_SMTP_FROM": "alertes@agence-demo.fr", "TELEGEST_SMTP_STARTTLS": "0",
        "TELEGEST_ALERT_SWEEP_S": "1", "TELEGEST_OUTBOX_POLL_S": "1",
        "TELEGEST_PUBLIC_URL": "http://console.test"})
    tap = None
    try:
        worker.start().wait_ready()
        (late,) = wait_until(lambda: mails("Late visit"), 30, what="the late e-mail")
        assert late["To"] == ONCALL and late["From"] == "alertes@agence-demo.fr"
        text = late.get_content()
        assert "Intervention en retard" in text and "Émile Test" in text
        assert text.index("Intervention en retard") < text.index("Late visit")
        assert mails("Missed visit") == []

        # the coordinator shortens the missed threshold in the settings: now 20 min is missed
        with sessions() as s:
            agency_settings.update(s, s.get(Organisation, org_id), {"missed_after_min": 18},
                                   who="test", role="admin")
            s.commit()
        (missed,) = wait_until(lambda: mails("Missed visit"), 30, what="the missed e-mail")
        assert missed["To"] == ONCALL and "Intervention manquée" in missed.get_content()
        assert {k: a.resolved_at for k, a in alerts().items()} == {"late": None, "missed": None}

        tap = reader_for(db_url, mosquitto, tmp_path, IDENT).start()
        assert tap.connected.wait(10)
        assert tap.tap(CARD) == "in"
        closed = wait_until(lambda: (a := alerts()) and all(x.resolved_at for x in a.values())
                            and a, 30, what="both alerts closed by the arrival")
        assert {k: a.detail["closed_by"] for k, a in closed.items()} == \
            {"late": "arrived", "missed": "arrived"}
        assert len(mails("Late visit")) == len(mails("Missed visit")) == 1  # once each
    finally:
        if tap is not None:
            tap.stop()
        worker.stop()
        engine.dispose()
