"""Onboarding in a real browser: a manager invites a coordinator, who opens the e-mailed link,
sets her password and is signed in; an admin registers a phone and shows its enrolment QR
code; the devices list shows a reader holding an old planning until it reports the new one.
Screenshots go to the test's tmp folder (console-staff.png, console-devices-register.png)."""
from __future__ import annotations

import re

import pytest

from tests.browser.test_console import account, query, sign_in

pytestmark = pytest.mark.browser
NEW = "staple violet lantern 42"


def test_a_manager_invites_a_coordinator_who_sets_her_password(browser, demo, api_server,
                                                               tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(demo[0], "manager"), "/board")
    page.click("header nav >> text=Staff")
    page.wait_for_url("**/users")
    page.fill("#email", "lea.martin@agence-demo.fr")
    page.select_option("#role", "manager")
    page.click("#invite-form button[type=submit]")
    page.wait_for_url("**/users?msg=invited")
    assert "Invitation sent" in page.inner_text("[role=status]")
    assert "lea.martin@agence-demo.fr" in page.inner_text("#invitations")
    page.screenshot(path=str(tmp_path / "console-staff.png"), full_page=True)
    ((to, body),) = query(demo[0], "SELECT recipient, body FROM outbox")
    assert to == "lea.martin@agence-demo.fr"
    path = re.search(r"(/invite/tgi_[\w-]+)", body).group(1)

    lea = browser.new_context().new_page()
    lea.goto(api_server + path)
    assert "lea.martin@agence-demo.fr" in lea.inner_text("#invite-email")
    lea.fill("#password", NEW)
    lea.fill("#again", NEW + "x")
    lea.click("#invite-password button[type=submit]")
    assert "differ" in lea.inner_text("[role=alert]")
    lea.fill("#password", NEW)
    lea.fill("#again", NEW)
    lea.click("#invite-password button[type=submit]")
    lea.wait_for_url("**/board?msg=welcome")
    assert "Welcome" in lea.inner_text("[role=status]")
    lea.click("#account-link")
    assert lea.inner_text("#account-who") == "lea.martin@agence-demo.fr"
    # the link worked once
    again = browser.new_context().new_page()
    again.goto(api_server + path)
    assert "already used" in again.inner_text("[role=alert]")


def test_an_admin_registers_a_phone_and_a_reader_acks_its_planning(browser, demo, api_server,
                                                                  tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(demo[0], "admin"), "/devices")
    ((reader, version),) = query(demo[0], "SELECT ident, config_version FROM devices "
                                          "WHERE kind = 'reader' ORDER BY ident LIMIT 1")
    page.fill("#register-form input[name=ident]", "phone-lea")
    page.check("#register-form input[value=phone]")
    page.click("#register-form button[type=submit]")
    page.wait_for_url("**/devices/phone-lea?msg=registered")
    page.click("#enrol button[type=submit]")
    page.wait_for_selector("#enrolment-qr svg")
    assert "/app/enrol?token=tge_" in page.inner_text("#enrolment-url")

    import sqlalchemy as sa
    engine = sa.create_engine(demo[0])
    with engine.begin() as conn:  # the fleet pushed v+1; the reader still reports v
        conn.execute(sa.text("UPDATE devices SET config_version = :v, health = :h "
                             "WHERE ident = :i"),
                     {"v": version + 1, "h": f'{{"cfg": {version}}}', "i": reader})
    page.goto(api_server + "/devices")
    cell = page.locator(f"tr[data-device='{reader}'] td.planning")
    assert cell.inner_text() == f"v{version} → v{version + 1}"
    page.screenshot(path=str(tmp_path / "console-devices-register.png"), full_page=True)
    with engine.begin() as conn:  # its next health report says it uses the new one
        conn.execute(sa.text("UPDATE devices SET health = :h WHERE ident = :i"),
                     {"h": f'{{"cfg": {version + 1}}}', "i": reader})
    engine.dispose()
    page.reload()
    assert cell.inner_text() == f"✓ v{version + 1}"
