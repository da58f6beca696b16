"""A caregiver's message, written on the phone, reaches the coordinators' mailbox: the
gateway stores it and queues the e-mails in the same transaction, the outbox's dispatcher
sends them to a real SMTP server in this process (aiosmtpd). And the data layer on
PostgreSQL: receipts, the idempotent resend, another agency's caregiver refused."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from fleet import messages, outbox
from fleet.db import make_engine, session_factory
from fleet.models import AuditLog, Caregiver, Device, Organisation, User
from tests.alerts.conftest import smtp, smtp_settings  # noqa: F401 (the fixture)


def test_the_coordinators_receive_the_caregiver_s_message(fleet_api, phone, demo,
                                                         smtp):  # noqa: F811
    engine = make_engine(demo[0])
    sessions = session_factory(engine)
    with sessions() as s:
        org_id = s.get(Caregiver, phone.caregiver_id).organisation_id
        s.add_all([User(email="coord@agence-demo.fr", role="manager", organisation_id=org_id),
                   User(email="tech@agence-demo.fr", role="technician",
                        organisation_id=org_id)])
        s.commit()
    r = phone.post("/messages", json={"ref": "b7e1", "subject": "Clé introuvable",
                                      "body": "La boîte à clés de Mme Durand est vide.\n"
                                              "J'attends devant la porte.",
                                      "visit": phone.visit_id})
    assert r.status_code == 201, r.text
    sent = outbox.dispatch_due(sessions, smtp_settings(demo[0], smtp),
                               datetime.now(timezone.utc))
    assert sent["sent"] == 1, sent
    (mail,) = smtp.handler.messages
    assert mail["To"] == "coord@agence-demo.fr", "the managers, not the technicians"
    assert mail["Subject"] == "[telegest] Alice Martin: Clé introuvable"
    text = mail.get_content()
    assert "boîte à clés de Mme Durand" in text and "Mme Jeanne Durand" in text
    assert "/messages/inbox" in text
    # the phone sends it again (its answer was lost): no second e-mail
    assert phone.post("/messages", json={"ref": "b7e1", "subject": "Clé introuvable",
                                         "body": "x"}).status_code == 200
    assert outbox.dispatch_due(sessions, smtp_settings(demo[0], smtp),
                               datetime.now(timezone.utc))["sent"] == 0
    assert len(smtp.handler.messages) == 1
    engine.dispose()


@pytest.mark.postgres
def test_messages_on_postgres(pg_database_url):
    from fleet.db import migrate

    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    with session_factory(engine)() as s:
        ours, theirs = Organisation(name="Soins du Val"), Organisation(name="Autre")
        s.add_all([ours, theirs])
        s.flush()
        alice = Caregiver(organisation_id=ours.id, name="Alice")
        zoe = Caregiver(organisation_id=theirs.id, name="Zoé")
        s.add_all([alice, zoe])
        s.flush()
        phone = Device(ident="phone-a", kind="phone", organisation_id=ours.id,
                       caregiver_id=alice.id, status="active")
        s.add(phone)
        s.commit()
        with pytest.raises(messages.MessageProblem, match=f"caregiver {zoe.id} is not"):
            messages.send_to_caregivers(s, ours, subject="s", body="b",
                                        caregiver_ids=[alice.id, zoe.id], who="t", role="admin")
        s.rollback()
        m = messages.send_to_caregivers(s, ours, subject="Canicule", body="Boire",
                                        caregiver_ids=None, mandatory=True, who="t",
                                        role="admin")
        s.commit()
        (got,) = messages.for_phone(s, alice.id)
        assert got["id"] == m.id and got["mandatory"] and got["ack"] is None
        messages.mark_read(s, alice.id, m.id, ack=True)
        s.commit()
        (r,) = messages.receipts(s, m.id)
        assert r["delivered_at"] and r["read_at"] and r["acknowledged_at"]
        assert messages.counts(s, [m.id])[m.id] == {"recipients": 1, "delivered": 1, "read": 1,
                                                    "acknowledged": 1}
        first = messages.from_caregiver(s, phone, ref="r1", subject="a", body="b")
        again = messages.from_caregiver(s, phone, ref="r1", subject="a", body="b")
        s.commit()
        assert first.created and not again.created and again.message.id == first.message.id
        assert s.scalars(select(AuditLog).where(AuditLog.action == "message")).one().detail[
            "to"] == "everyone"
    engine.dispose()
