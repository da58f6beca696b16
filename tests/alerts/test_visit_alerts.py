"""Late and missed visits (fleet.visit_alerts): raised once per visit and kind, e-mailed to
each on-call address (through the outbox, delivered by a real SMTP server in-process), closed
on arrival, on correction and on cancellation."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet import outbox, visit_alerts
from fleet.db import session_factory
from fleet.models import (Alert, AlertSettings, Caregiver, Client, Outbox, Visit,
                          VisitRecord)
from tests.alerts.conftest import smtp_settings

START = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)  # 09:00 in Paris
ONCALL = "astreinte@soins-du-val.fr, Direction@Soins-du-Val.fr"


@pytest.fixture
def planned(session, fleet):
    org = fleet["org"]
    session.add(AlertSettings(organisation_id=org.id, late_after_min=15, missed_after_min=60,
                              oncall_emails=ONCALL))
    client = Client(organisation_id=org.id, name="Mme Durand")
    carer = Caregiver(organisation_id=org.id, name="Awa Diallo")
    session.add_all([client, carer])
    session.flush()
    visit = Visit(organisation_id=org.id, client_id=client.id, caregiver_id=carer.id,
                  planned_start=START, planned_end=START + timedelta(hours=2),
                  created_at=START - timedelta(days=1))
    session.add(visit)
    session.commit()
    return {"visit": visit, "client": client, "caregiver": carer}


def sweep(session, minutes: float) -> dict:
    counts = visit_alerts.sweep(session, START + timedelta(minutes=minutes),
                                "https://console.soins-du-val.fr/")
    session.commit()
    return dict(counts)


def alerts_of(session, visit_id: int) -> dict[str, Alert]:
    session.expire_all()
    return {a.kind: a for a in session.scalars(select(Alert).where(Alert.visit_id == visit_id))}


def mails(session) -> list[Outbox]:
    return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def test_late_then_missed_once_each_with_one_mail_per_address(session, planned):
    v = planned["visit"]
    assert sweep(session, 14) == {}
    assert sweep(session, 15) == {"alert_opened_late": 1, "emails_queued": 2}
    for minute in (16, 30, 59):  # sweeps keep running: nothing new
        assert sweep(session, minute) == {}
    assert sweep(session, 60) == {"alert_opened_missed": 1, "emails_queued": 2}
    assert sweep(session, 61) == {}
    got = alerts_of(session, v.id)
    assert set(got) == {"late", "missed"}
    assert got["late"].opened_at == START + timedelta(minutes=15)
    assert got["missed"].opened_at == START + timedelta(minutes=60)
    assert all(a.resolved_at is None and a.caregiver_id == planned["caregiver"].id
               for a in got.values())
    rows = mails(session)
    assert [(r.recipient, r.subject.split(" — ")[0]) for r in rows] == [
        ("astreinte@soins-du-val.fr", "Intervention en retard · Late visit"),
        ("Direction@Soins-du-Val.fr", "Intervention en retard · Late visit"),
        ("astreinte@soins-du-val.fr", "Intervention manquée · Missed visit"),
        ("Direction@Soins-du-Val.fr", "Intervention manquée · Missed visit"),
    ]
    late = rows[0]
    assert late.subject == "Intervention en retard · Late visit — Mme Durand 09:00"
    fr, en = late.body.split("\n\n")
    assert "Mme Durand" in fr and "Awa Diallo" in fr and "le 02/03/2026 de 09:00 à 11:00" in fr
    assert "15 min" in fr and "Europe/Paris" in fr
    assert "caregiver Awa Diallo" in en and "on 2026-03-02 from 09:00 to 11:00" in en
    assert f"https://console.soins-du-val.fr/visits/{v.id}" in fr
    assert f"https://console.soins-du-val.fr/visits/{v.id}" in en


def test_first_seen_missed_raises_missed_only(session, planned):
    assert sweep(session, 90) == {"alert_opened_missed": 1, "emails_queued": 2}
    assert set(alerts_of(session, planned["visit"].id)) == {"missed"}


def test_missed_at_the_planned_end_when_it_comes_first(session, planned):
    planned["visit"].planned_end = START + timedelta(minutes=30)
    session.commit()
    assert sweep(session, 15)["alert_opened_late"] == 1
    assert sweep(session, 30)["alert_opened_missed"] == 1


def test_closed_when_the_caregiver_arrives(session, planned):
    v = planned["visit"]
    sweep(session, 20)
    session.add(VisitRecord(visit_id=v.id, actual_start=START + timedelta(minutes=25),
                            status="in_progress"))
    session.commit()
    assert sweep(session, 26) == {"alert_resolved": 1}
    late = alerts_of(session, v.id)["late"]
    assert late.resolved and late.resolved_at == START + timedelta(minutes=26)
    assert late.detail["closed_by"] == "arrived"
    assert sweep(session, 120) == {}  # started: never missed


def test_closed_when_the_visit_is_corrected(session, planned):
    from fleet.corrections import correct

    v = planned["visit"]
    sweep(session, 70)
    # the coordinator records the visit nobody clocked (fleet.corrections, code CRE)
    correct(session, v, code="CRE", arrival=START, departure=START + timedelta(hours=2),
            why="tablet forgotten, confirmed by phone with the client", who="user:anne",
            role="manager", organisation_id=v.organisation_id)
    session.commit()
    assert sweep(session, 75) == {"alert_resolved": 1}
    missed = alerts_of(session, v.id)["missed"]
    assert missed.resolved_at is not None and missed.detail["closed_by"] == "corrected"


def test_a_suppressed_visit_closes_its_alerts(session, planned):
    from fleet.corrections import correct

    v = planned["visit"]
    sweep(session, 20)
    correct(session, v, code="SUP", why="client in hospital", who="user:anne",
            role="manager", organisation_id=v.organisation_id)
    session.commit()
    assert sweep(session, 90) == {"alert_resolved": 1}
    assert set(alerts_of(session, v.id)) == {"late"}


def test_closed_when_cancelled_and_cancelled_visits_raise_nothing(session, planned, fleet):
    v = planned["visit"]
    sweep(session, 20)
    v.status = "cancelled"
    session.commit()
    assert sweep(session, 21) == {"alert_resolved": 1}
    assert alerts_of(session, v.id)["late"].detail["closed_by"] == "cancelled"
    assert sweep(session, 90) == {}
    assert set(alerts_of(session, v.id)) == {"late"}


def test_inactive_caregivers_raise_nothing(session, planned):
    planned["caregiver"].active = False
    session.commit()
    assert sweep(session, 90) == {}
    assert alerts_of(session, planned["visit"].id) == {}


def test_old_visits_raise_nothing(session, planned):
    """A fleet started after a long stop does not e-mail yesterday's visits."""
    assert sweep(session, 60 * 25) == {}


def test_a_visit_entered_after_the_fact_raises_only_what_falls_due_later(session, planned):
    v = planned["visit"]
    v.created_at = START + timedelta(minutes=30)  # typed in when already late
    session.commit()
    assert sweep(session, 40) == {}
    assert sweep(session, 60) == {"alert_opened_missed": 1, "emails_queued": 2}
    assert set(alerts_of(session, v.id)) == {"missed"}


def test_no_oncall_address_raises_the_alert_without_mail(session, planned, fleet):
    session.get(AlertSettings, fleet["org"].id).oncall_emails = ""
    session.commit()
    assert sweep(session, 15) == {"alert_opened_late": 1}
    assert mails(session) == []


def test_defaults_without_settings_row(session, planned, fleet):
    session.delete(session.get(AlertSettings, fleet["org"].id))
    session.commit()
    assert sweep(session, 14) == {}
    assert sweep(session, 15) == {"alert_opened_late": 1}
    assert sweep(session, 60) == {"alert_opened_missed": 1}


def test_the_alert_mail_reaches_the_smtp_server(engine, session, planned, smtp, database_url):
    sweep(session, 15)
    counts = outbox.dispatch_due(session_factory(engine), smtp_settings(database_url, smtp),
                                 START + timedelta(minutes=15))
    assert counts["sent"] == 2
    got = sorted(smtp.handler.messages, key=lambda m: m["To"])
    assert [m["To"] for m in got] == ["Direction@Soins-du-Val.fr", "astreinte@soins-du-val.fr"]
    text = got[0].get_content()
    assert "Intervention en retard : Mme Durand" in text and "Late visit: Mme Durand" in text
    assert text.index("Intervention en retard") < text.index("Late visit")


def test_open_by_visit_prefers_missed(session, planned):
    v = planned["visit"]
    sweep(session, 15)
    assert visit_alerts.open_by_visit(session, [v.id]) == {v.id: "late"}
    sweep(session, 60)
    assert visit_alerts.open_by_visit(session, [v.id]) == {v.id: "missed"}


@pytest.mark.postgres
def test_on_postgresql_two_sweeps_at_once_raise_one_alert_and_mail(pg):
    """Two sweepers during a lease handover: the partial unique index and the outbox's dedupe
    key keep one alert and one e-mail."""
    sessions, org_id = pg
    with sessions() as s:
        s.add(AlertSettings(organisation_id=org_id, oncall_emails="astreinte@agence.fr"))
        client = Client(organisation_id=org_id, name="Mme Durand")
        carer = Caregiver(organisation_id=org_id, name="Awa Diallo")
        s.add_all([client, carer])
        s.flush()
        s.add(Visit(organisation_id=org_id, client_id=client.id, caregiver_id=carer.id,
                    planned_start=START, planned_end=START + timedelta(hours=2),
                    created_at=START - timedelta(days=1)))
        s.commit()
    a, b = sessions(), sessions()
    try:
        at = START + timedelta(minutes=20)
        visit_alerts.sweep(a, at)  # inserted, not committed yet
        # b has not seen a's alert: its insert waits for a, then does nothing
        other = threading.Thread(target=lambda: (visit_alerts.sweep(b, at), b.commit()))
        other.start()
        a.commit()
        other.join(30)
        assert not other.is_alive()
    finally:
        a.close()
        b.close()
    with sessions() as s:
        assert [x.kind for x in s.scalars(select(Alert))] == ["late"]
        assert len(mails(s)) == 1
