"""The agency's settings and the outbox in a real browser: a manager saves the alert
thresholds and on-call e-mails, a wrong address is refused, a dead letter is sent again, the
board shows an open alert; both pages fit a 360 px phone. Screenshots go to the test's tmp
folder (console-settings*.png, console-outbox.png, console-board-alert.png)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tests.browser.test_console import account, query, sign_in
from tests.helpers import unstarted_visit

pytestmark = pytest.mark.browser


def test_a_manager_saves_the_alert_thresholds(browser, demo, api_server, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(demo[0], "manager"), "/board")
    page.click("header nav >> text=Settings")
    page.wait_for_url("**/settings")
    assert page.input_value("#late_after_min") == "15"
    assert page.input_value("#missed_after_min") == "60"
    page.fill("#late_after_min", "10")
    page.fill("#missed_after_min", "45")
    page.fill("#oncall_emails", "astreinte@agence-demo.fr\nnot an address")
    page.click("#settings-form button[type=submit]")
    assert "is not an e-mail address" in page.inner_text("[role=alert]")
    page.screenshot(path=str(tmp_path / "console-settings-error.png"), full_page=True)
    assert query(demo[0], "SELECT late_after_min FROM alert_settings") == []

    page.fill("#oncall_emails", "astreinte@agence-demo.fr\nnuit@agence-demo.fr")
    page.select_option("#overrun_policy", "cap")
    page.click("#settings-form button[type=submit]")
    page.wait_for_url("**/settings?msg=saved")
    assert "Saved" in page.inner_text("[role=status]")
    assert page.input_value("#late_after_min") == "10"
    assert query(demo[0], "SELECT late_after_min, missed_after_min, oncall_emails "
                          "FROM alert_settings") == [
        (10, 45, "astreinte@agence-demo.fr, nuit@agence-demo.fr")]
    assert query(demo[0], "SELECT overrun_policy FROM organisations") == [("cap",)]
    assert len(query(demo[0], "SELECT id FROM audit_log WHERE action = 'settings'")) == 1
    page.screenshot(path=str(tmp_path / "console-settings.png"), full_page=True)


def test_a_dead_letter_is_sent_again_and_the_board_shows_the_alert(browser, demo, api_server,
                                                                   tmp_path):
    from fleet import agency_settings, visit_alerts
    from fleet.db import make_engine, session_factory
    from fleet.models import Organisation, Outbox
    from sqlalchemy import select

    engine = make_engine(demo[0])
    now = datetime.now(timezone.utc)
    with session_factory(engine)() as s:
        org = s.scalars(select(Organisation)).one()
        agency_settings.update(s, org, {"oncall_emails": "astreinte@agence-demo.fr, "
                                                         "direction@agence-demo.fr"},
                               who="test", role="admin")
        unstarted_visit(s, 75)  # missed
        visit = unstarted_visit(s, 20)
        visit_alerts.sweep(s, now)
        s.flush()
        rows = s.scalars(select(Outbox).order_by(Outbox.id)).all()
        assert len(rows) == 4, "a late and a missed visit, each to two addresses"
        rows[0].state, rows[0].attempts = "dead", 8
        rows[0].last_error = "550 5.1.1 <astreinte@agence-demo.fr>: mailbox unavailable"
        for row in rows[1:]:
            row.state, row.attempts, row.sent_at = "sent", 1, now
        s.commit()
        dead_id, visit_id = rows[0].id, visit.id
        day = visit.planned_start.astimezone(ZoneInfo(org.timezone)).date().isoformat()
    engine.dispose()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(demo[0], "manager"), "/board")
    page.goto(f"{api_server}/board?day={day}")
    page.wait_for_selector(f"#rows tr[data-visit='{visit_id}'] .tag.alert-late")
    page.screenshot(path=str(tmp_path / "console-board-alert.png"), full_page=True)

    page.click("header nav >> text=Outbox")
    page.wait_for_url("**/outbox")
    row = page.locator(f"#outbox tr[data-row='{dead_id}']")
    assert "mailbox unavailable" in row.inner_text()
    page.screenshot(path=str(tmp_path / "console-outbox.png"), full_page=True)
    row.locator("button[type=submit]").click()
    page.wait_for_url("**/outbox?state=pending*")
    assert "Sent again" in page.inner_text("[role=status]")
    assert query(demo[0], "SELECT state, attempts FROM outbox WHERE id = :i", i=dead_id) == [
        ("pending", 0)]
    assert query(demo[0], "SELECT target FROM audit_log WHERE action = 'retry'") == [
        (f"outbox:{dead_id}",)]


def test_settings_and_outbox_fit_a_360_pixel_phone(browser, demo, api_server, tmp_path):
    from fleet import agency_settings, visit_alerts
    from fleet.db import make_engine, session_factory
    from fleet.models import Organisation, Outbox
    from sqlalchemy import select

    engine = make_engine(demo[0])
    with session_factory(engine)() as s:  # a waiting and a failed e-mail on the page
        agency_settings.update(s, s.scalars(select(Organisation)).one(),
                               {"oncall_emails": "astreinte-de-nuit@agence-demo.fr"},
                               who="test", role="admin")
        visit_alerts.sweep(s, unstarted_visit(s, 20).planned_start + timedelta(minutes=20))
        row = s.scalars(select(Outbox)).first()
        row.state, row.last_error = "dead", "550 5.1.1 <astreinte-de-nuit@agence-demo.fr>: " \
                                            "Recipient address rejected: User unknown"
        s.commit()
    engine.dispose()
    page = browser.new_page(viewport={"width": 360, "height": 740})
    sign_in(page, api_server, account(demo[0], "manager"), "/settings")
    for path in ("/settings", "/outbox"):
        page.goto(api_server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} scrolls sideways on a phone ({width}px)"
        page.screenshot(path=str(tmp_path / f"console-360-{path.strip('/')}.png"),
                        full_page=True)
