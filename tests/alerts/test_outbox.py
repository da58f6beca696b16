"""The outbox (fleet.outbox) against a real SMTP server in this process (aiosmtpd): delivery,
the dedupe key, backoff and dead letters, a server away, two dispatchers racing."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet import outbox
from fleet.db import session_factory
from fleet.models import Outbox
from tests.alerts.conftest import smtp_settings
from tools.broker import free_port

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def queue(session, org_id: int, key: str = "k1", to: str = "astreinte@soins-du-val.fr") -> None:
    outbox.enqueue_email(session, organisation_id=org_id, to=to,
                         subject="Intervention en retard · Late visit — Mme Durand 09:00",
                         body="Intervention en retard : Mme Durand\nLate visit: Mme Durand\n",
                         dedupe_key=key, now=NOW)


def rows(session) -> list[Outbox]:
    session.expire_all()
    return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def test_a_queued_mail_is_delivered_once(engine, session, fleet, smtp, database_url):
    queue(session, fleet["org"].id)
    queue(session, fleet["org"].id)  # the same dedupe key: nothing more
    session.commit()
    assert len(rows(session)) == 1
    settings = smtp_settings(database_url, smtp)
    counts = outbox.dispatch_due(session_factory(engine), settings, NOW)
    assert counts["sent"] == 1
    (mail,) = smtp.handler.messages
    assert mail["To"] == "astreinte@soins-du-val.fr"
    assert mail["From"] == "alertes@soins-du-val.fr"
    assert mail["Subject"] == "Intervention en retard · Late visit — Mme Durand 09:00"
    assert "Late visit: Mme Durand" in mail.get_content()
    (row,) = rows(session)
    assert (row.state, row.attempts, row.sent_at, row.last_error) == ("sent", 1, NOW, None)
    assert outbox.dispatch_due(session_factory(engine), settings, NOW + timedelta(hours=1)) \
        == {}
    assert len(smtp.handler.messages) == 1


def test_refused_mail_backs_off_then_becomes_a_dead_letter(engine, session, fleet, smtp,
                                                           database_url):
    queue(session, fleet["org"].id)
    session.commit()
    smtp.handler.refuse = "451 4.3.0 mailbox busy, try later"
    settings = smtp_settings(database_url, smtp, outbox_max_attempts=3, outbox_backoff_s=60)
    sessions = session_factory(engine)
    assert outbox.dispatch_due(sessions, settings, NOW)["retry"] == 1
    (row,) = rows(session)
    assert row.state == "pending" and row.attempts == 1
    assert row.next_attempt_at == NOW + timedelta(seconds=60)
    assert "451" in row.last_error and "mailbox busy" in row.last_error
    # not due yet: nothing is tried
    assert outbox.dispatch_due(sessions, settings, NOW + timedelta(seconds=59)) == {}
    t2 = NOW + timedelta(seconds=60)
    assert outbox.dispatch_due(sessions, settings, t2)["retry"] == 1
    (row,) = rows(session)
    assert row.attempts == 2 and row.next_attempt_at == t2 + timedelta(seconds=120)
    assert outbox.dispatch_due(sessions, settings, t2 + timedelta(seconds=120))["dead"] == 1
    (row,) = rows(session)
    assert row.state == "dead" and row.attempts == 3 and "451" in row.last_error
    assert outbox.dispatch_due(sessions, settings, t2 + timedelta(days=1)) == {}
    assert smtp.handler.messages == []

    # a manager sends the dead letter again: delivered once the server accepts
    smtp.handler.refuse = None
    assert outbox.retry(session, row, t2 + timedelta(days=1))
    session.commit()
    assert not outbox.retry(session, row, t2 + timedelta(days=1))  # pending now, not dead
    session.commit()
    assert outbox.dispatch_due(sessions, settings, t2 + timedelta(days=1))["sent"] == 1
    assert len(smtp.handler.messages) == 1 and rows(session)[0].state == "sent"


def test_a_permanent_refusal_is_dead_at_once(engine, session, fleet, smtp, database_url):
    queue(session, fleet["org"].id)
    session.commit()
    smtp.handler.refuse = "550 5.1.1 no such mailbox"
    counts = outbox.dispatch_due(session_factory(engine), smtp_settings(database_url, smtp),
                                 NOW)
    assert counts["dead"] == 1
    (row,) = rows(session)
    assert row.state == "dead" and row.attempts == 1 and row.last_error.startswith("550")


def test_server_away_is_retried(engine, session, fleet, database_url):
    from fleet.config import Settings

    queue(session, fleet["org"].id)
    session.commit()
    settings = Settings(database_url=database_url, smtp_host="127.0.0.1",
                        smtp_port=free_port(), smtp_from="alertes@soins-du-val.fr",
                        smtp_starttls=False)
    assert outbox.dispatch_due(session_factory(engine), settings, NOW)["retry"] == 1
    (row,) = rows(session)
    assert row.state == "pending" and "ConnectionRefusedError" in row.last_error


def test_no_smtp_host_leaves_mail_pending_and_says_so_once(engine, session, fleet,
                                                           database_url, caplog):
    from fleet.config import Settings

    queue(session, fleet["org"].id)
    session.commit()
    settings = Settings(database_url=database_url, smtp_host=None)
    outbox._warned.clear()
    with caplog.at_level("WARNING", logger="telegest.outbox"):
        for minute in range(3):
            counts = outbox.dispatch_due(session_factory(engine), settings,
                                         NOW + timedelta(minutes=minute))
            assert counts == {"waiting": 1}
    said = [r.message for r in caplog.records if "TELEGEST_SMTP_HOST" in r.message]
    assert len(said) == 1, said
    (row,) = rows(session)
    assert (row.state, row.attempts) == ("pending", 0)


def race(sessions, settings, dispatchers: int) -> list:
    """`dispatchers` threads call dispatch_due at the same moment; their counts."""
    start = threading.Barrier(dispatchers)
    results: list = []

    def run() -> None:
        start.wait()
        results.append(outbox.dispatch_due(sessions, settings, NOW))

    threads = [threading.Thread(target=run) for _ in range(dispatchers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_dispatchers_racing_send_each_mail_once(engine, session, fleet, smtp,
                                                    database_url):
    for i in range(20):
        queue(session, fleet["org"].id, key=f"k{i}", to=f"astreinte{i}@soins-du-val.fr")
    session.commit()
    results = race(session_factory(engine), smtp_settings(database_url, smtp), 2)
    assert sum(r["sent"] for r in results) == 20
    recipients = sorted(m["To"] for m in smtp.handler.messages)
    assert recipients == sorted(f"astreinte{i}@soins-du-val.fr" for i in range(20))
    assert {(r.state, r.attempts) for r in rows(session)} == {("sent", 1)}


def test_claim_is_a_compare_and_set(engine, session, fleet):
    """The seam of the race, made deterministic: two dispatchers read the same row; the
    second claim finds it taken."""
    queue(session, fleet["org"].id)
    session.commit()
    (row,) = rows(session)
    letter = outbox.Letter(row.id, "email", row.recipient, row.subject, row.body, None, 0)
    a, b = session_factory(engine)(), session_factory(engine)()
    try:
        assert outbox._claim(a, letter, NOW) is True
        assert outbox._claim(b, letter, NOW) is False
    finally:
        a.close()
        b.close()


@pytest.mark.postgres
def test_three_dispatchers_racing_on_postgresql_send_each_mail_once(pg, pg_database_url,
                                                                    smtp):
    sessions, org_id = pg
    with sessions() as s:
        for i in range(30):
            queue(s, org_id, key=f"k{i}", to=f"astreinte{i}@soins-du-val.fr")
        s.commit()
    results = race(sessions, smtp_settings(pg_database_url, smtp), 3)
    assert sum(r["sent"] for r in results) == 30
    assert sorted(m["To"] for m in smtp.handler.messages) == \
        sorted(f"astreinte{i}@soins-du-val.fr" for i in range(30))
    with sessions() as s:
        assert {(r.state, r.attempts) for r in rows(s)} == {("sent", 1)}


def test_a_name_with_a_line_break_stays_one_subject_line(engine, session, fleet, smtp,
                                                         database_url):
    outbox.enqueue_email(session, organisation_id=fleet["org"].id, to="astreinte@agence.fr",
                         subject="Late visit — Mme Durand\r\nBcc: everyone@example.com",
                         body="…", dedupe_key="crlf", now=NOW)
    session.commit()
    assert outbox.dispatch_due(session_factory(engine), smtp_settings(database_url, smtp),
                               NOW)["sent"] == 1
    (mail,) = smtp.handler.messages
    assert mail["Subject"] == "Late visit — Mme Durand Bcc: everyone@example.com"
    assert mail["Bcc"] is None


def test_a_sender_that_breaks_counts_as_a_failed_try(engine, session, fleet, database_url):
    class Broken:
        def unavailable(self, settings):
            return None

        def send(self, letter, settings):
            raise RuntimeError("a bug")

    from fleet.config import Settings

    queue(session, fleet["org"].id)
    session.commit()
    counts = outbox.dispatch_due(session_factory(engine), Settings(database_url=database_url),
                                 NOW, senders={"email": Broken()})
    assert counts["retry"] == 1
    (row,) = rows(session)
    assert row.attempts == 1 and row.last_error == "RuntimeError: a bug"


def test_smtp_settings_are_checked_at_start(monkeypatch):
    from fleet.config import Settings, SettingsError

    monkeypatch.setenv("TELEGEST_SMTP_HOST", "smtp.agence.fr")
    with pytest.raises(SettingsError, match="TELEGEST_SMTP_FROM"):
        Settings()
    monkeypatch.setenv("TELEGEST_SMTP_FROM", "alertes@agence.fr")
    monkeypatch.setenv("TELEGEST_SMTP_STARTTLS", "perhaps")
    with pytest.raises(SettingsError, match="TELEGEST_SMTP_STARTTLS"):
        Settings()
    monkeypatch.setenv("TELEGEST_SMTP_STARTTLS", "0")
    s = Settings()
    assert (s.smtp_host, s.smtp_port, s.smtp_from, s.smtp_starttls) == \
        ("smtp.agence.fr", 587, "alertes@agence.fr", False)
    monkeypatch.setenv("TELEGEST_SMTP_USERNAME", "alertes")
    with pytest.raises(SettingsError, match="TELEGEST_SMTP_PASSWORD is not"):
        Settings()
    monkeypatch.setenv("TELEGEST_SMTP_PASSWORD", "password")
    with pytest.raises(SettingsError, match="well-known"):
        Settings()
    monkeypatch.setenv("TELEGEST_OUTBOX_MAX_ATTEMPTS", "0")
    with pytest.raises(SettingsError, match="TELEGEST_OUTBOX_MAX_ATTEMPTS"):
        Settings(smtp_password="a real one, long enough")
    with pytest.raises(SettingsError, match="TELEGEST_PUBLIC_URL"):
        Settings(public_url="console.agence.fr", outbox_max_attempts=3,
                 smtp_password="a real one, long enough")
