"""Issue #10 end to end: the coordinator's month-end on real parts.

A visit left unstarted is e-mailed late, then missed, to the on-call coordinator (a real SMTP
server in this process, aiosmtpd); the caregiver's tap on the home's virtual reader goes through
a real mosquitto and the worker process, starts the visit and closes both alerts; she forgets to
clock out; the coordinator corrects the departure with COD in the console (chromium), validates
the month, and the ESPPADOM export and the payroll CSV (`telegest export`) carry the retained
times and the code.
"""
from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from sqlalchemy import select

from fleet import agency_settings
from fleet.db import make_engine, session_factory
from fleet.models import Alert, Badge, Caregiver, Device, Organisation, Visit, VisitRecord
from tests.alerts.conftest import smtp  # noqa: F401 (the SMTP server fixture)
from tests.browser.conftest import browser  # noqa: F401 (chromium)
from tests.browser.test_console import account, sign_in
from tests.helpers import ROOT, WorkerProcess, reader_for, wait_until
from tools.up import seed

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
TZ = ZoneInfo("Europe/Paris")
IDENT = "demo-r1"
CARD = "04E2E0A1E2A1F0"
ONCALL = "astreinte@agence-demo.fr"


@pytest.fixture
def demo(database_url):
    """The demo agency as `telegest up` seeds it: today, the past two weeks, funders."""
    return database_url, seed(database_url, history=True)


def _export(db_url: str, kind: str, org_id: int, day: str, out) -> None:
    done = subprocess.run([sys.executable, "-m", "tools.cli", "export", kind, "--db", db_url,
                           "--org", str(org_id), "--from", day, "--to", day, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_month_end_alerts_tap_cod_in_the_console_validation_and_exports(
        demo, mosquitto, smtp, browser, api_server, tmp_path):  # noqa: F811
    db_url, _ = demo
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
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
                      planned_end=now + timedelta(minutes=10),
                      created_at=now - timedelta(days=1))  # planned yesterday: alerts are due
        s.add(visit)
        agency_settings.update(s, org, {"late_after_min": 15, "missed_after_min": 60,
                                        "oncall_emails": ONCALL}, who="test", role="admin")
        s.commit()
        visit_id, org_id, planned_end = visit.id, org.id, visit.planned_end
        # the visit's own day and month in Paris (just after midnight, not today's)
        visit_day = visit.planned_start.astimezone(TZ)
    link = f"http://console.test/visits/{visit_id}"

    def mails(kind: str) -> list:
        return [m for m in smtp.handler.messages
                if kind in m["Subject"] and link in m.get_content()]

    def alerts() -> dict[str, Alert]:
        with sessions() as s:
            return {a.kind: a for a in s.scalars(select(Alert).where(Alert.visit_id == visit_id))}

    def record() -> VisitRecord | None:
        with sessions() as s:
            return s.scalars(select(VisitRecord).where(VisitRecord.visit_id == visit_id)).first()

    worker = WorkerProcess(db_url, mosquitto.host, mosquitto.port, tmp_path / "worker.log", env={
        "TELEGEST_SMTP_HOST": smtp.hostname, "TELEGEST_SMTP_PORT": str(smtp.port),
        "TELEGEST_SMTP_FROM": "alertes@agence-demo.fr", "TELEGEST_SMTP_STARTTLS": "0",
        "TELEGEST_ALERT_SWEEP_S": "1", "TELEGEST_OUTBOX_POLL_S": "1",
        "TELEGEST_PUBLIC_URL": "http://console.test"})
    tap = None
    try:
        # 1. not started 20 minutes after its start: late; then, the coordinator's threshold
        # shortened, missed; both e-mailed
        worker.start().wait_ready()
        (late,) = wait_until(lambda: mails("Late visit"), 60, what="the late e-mail")
        assert mails("Missed visit") == []
        with sessions() as s:
            agency_settings.update(s, s.get(Organisation, org_id), {"missed_after_min": 18},
                                   who="test", role="admin")
            s.commit()
        (missed,) = wait_until(lambda: mails("Missed visit"), 60, what="the missed e-mail")
        assert late["To"] == missed["To"] == ONCALL and "Émile Test" in late.get_content()

        # 2. the caregiver taps in at the home: the visit starts (late), both alerts close
        tap = reader_for(db_url, mosquitto, tmp_path, IDENT).start()
        assert tap.connected.wait(10)
        assert tap.tap(CARD) == "in"
        started = wait_until(lambda: (r := record()) and r.actual_start and r, 30,
                             what="the visit started by the tap")
        assert started.actual_end is None, "she forgets to clock out"
        closed = wait_until(lambda: (a := alerts()) and all(x.resolved_at for x in a.values())
                            and a, 30, what="both alerts closed by the arrival")
        assert {k: a.detail["closed_by"] for k, a in closed.items()} == \
            {"late": "arrived", "missed": "arrived"}
    finally:
        if tap is not None:
            tap.stop()
        worker.stop()

    # 3. the coordinator corrects the forgotten departure with COD in the console
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(db_url, "manager"), "/board")
    page.goto(api_server + f"/visits/{visit_id}")
    assert page.locator("#code").input_value() == "COD"
    end_local = planned_end.astimezone(TZ)
    assert page.locator("#departure").input_value() == end_local.strftime("%Y-%m-%dT%H:%M")
    page.fill("#why", "forgot to clock out, confirmed by the client's daughter")
    page.click("#correction-form button[type=submit]")
    assert "Correction saved" in page.inner_text("[role=status]")
    assert page.inner_text("#retained-code") == "COD"
    rec = record()
    assert rec.correction_code == "COD" and rec.retained_end == planned_end
    assert rec.actual_end is None, "the raw period is untouched"
    retained_start = rec.retained_start

    # 4. the month is validated
    month = visit_day.strftime("%Y-%m")
    page.goto(api_server + f"/validation?month={month}")
    page.click("#validate-month button[type=submit]")
    assert "Month validated" in page.inner_text("[role=status]")
    assert record().validated_at is not None

    # 5. the exports carry the retained times and the code
    day = visit_day.date().isoformat()
    _export(db_url, "esppadom", org_id, day, tmp_path / "esppadom.xml")
    _export(db_url, "payroll", org_id, day, tmp_path / "payroll.csv")
    root = etree.fromstring((tmp_path / "esppadom.xml").read_bytes())
    (doc,) = [d for d in root.iter("{*}CrossIndustryDespatchAdvice")
              if d.findtext("{*}CIDDHExchangedDocument/{*}ID") == f"TG-{org_id}-{visit_id}"]
    event = doc.find(".//{*}ActualDespatchCISupplyChainEvent")
    assert event.findtext("{*}TypeCode") == "COD"
    local = "%Y-%m-%dT%H:%M:%S"
    assert event.findtext(".//{*}StartDateTime") == retained_start.astimezone(TZ).strftime(local)
    assert event.findtext(".//{*}EndDateTime") == end_local.strftime(local)
    rows = [r for r in csv.DictReader(io.StringIO((tmp_path / "payroll.csv").read_text()))
            if r["caregiver"] == "Émile Test" and r["period"] == "day"]
    minutes = (planned_end - retained_start).total_seconds() / 60
    assert [(r["day_or_week"], r["visits"], r["retained_hours"]) for r in rows] == \
        [(day, "1", f"{minutes / 60:.2f}")]
    engine.dispose()
