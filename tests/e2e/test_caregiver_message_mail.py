"""End to end, every part real: `telegest fleet api` as a process, a phone talking HTTP to its
device gateway, the worker as a process (the lease holder's outbox dispatcher) on a real
mosquitto, and a real SMTP server in this process (aiosmtpd). The caregiver's message, sent
twice as a phone does after a lost answer, reaches the coordinator's mailbox once."""
from __future__ import annotations

import httpx
import pytest

from fleet.db import make_engine, session_factory
from fleet.models import Caregiver, User
from tests.alerts.conftest import smtp  # noqa: F401 (the SMTP server fixture)
from tests.browser.test_caregiver import Setup
from tests.helpers import WorkerProcess, wait_until

pytestmark = pytest.mark.e2e


def test_the_caregiver_s_message_reaches_the_coordinator_by_mail(
        demo, mosquitto, smtp, api_server, tmp_path):  # noqa: F811
    setup = Setup(api_server, demo[0])
    password = httpx.post(api_server + "/api/v1/enrol", json={"token": setup.token}).json()[
        "password"]
    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        org_id = s.get(Caregiver, setup.caregiver_id).organisation_id
        s.add(User(email="coordination@agence-demo.fr", role="manager",
                   organisation_id=org_id))
        s.commit()
    engine.dispose()
    phone = httpx.Client(base_url=api_server + "/gw/v1", auth=(setup.ident, password),
                         timeout=10)
    body = {"ref": "0b9e-1", "subject": "Usager hospitalisé",
            "body": "Mme Durand a été emmenée aux urgences à 9 h 40 par sa fille.",
            "visit": setup.visit_id}
    assert phone.post("/messages", json=body).status_code == 201
    assert phone.post("/messages", json=body).status_code == 200  # the resend: no new mail
    worker = WorkerProcess(demo[0], mosquitto.host, mosquitto.port, tmp_path / "worker.log",
                           env={"TELEGEST_SMTP_HOST": smtp.hostname,
                                "TELEGEST_SMTP_PORT": str(smtp.port),
                                "TELEGEST_SMTP_FROM": "telegest@agence-demo.fr",
                                "TELEGEST_SMTP_STARTTLS": "0", "TELEGEST_OUTBOX_POLL_S": "1"})
    try:
        worker.start().wait_ready()
        (mail,) = wait_until(lambda: smtp.handler.messages, 30, what="the caregiver's e-mail")
        assert mail["To"] == "coordination@agence-demo.fr"
        assert mail["From"] == "telegest@agence-demo.fr"
        assert "Usager hospitalisé" in mail["Subject"] and "Alice Martin" in mail["Subject"]
        text = mail.get_content()
        assert "emmenée aux urgences" in text and "Mme Jeanne Durand" in text
        wait_until(lambda: setup.api.get("/messages", params={
            "direction": "to_office", "organisation_id": org_id}).json()["items"], 10,
            what="the message in the inbox")
        assert len(smtp.handler.messages) == 1
    finally:
        worker.stop()
        phone.close()
        setup.api.close()
