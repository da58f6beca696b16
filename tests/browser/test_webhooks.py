"""The webhooks and API keys pages in a real browser: a manager adds an endpoint (a non-http(s)
URL is refused first), sees its secret once, and no more after a reload; a dead delivery is
sent again; an admin revokes a key. Screenshots go to the test's tmp folder
(console-webhooks*.png, console-apikeys.png); docs/screenshots/ gets copies made by hand."""
from __future__ import annotations

import pytest

from tests.browser.test_console import account, query, sign_in

pytestmark = pytest.mark.browser


def test_a_manager_adds_an_endpoint_and_sees_its_secret_once(browser, demo, api_server,
                                                             tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(demo[0], "manager"), "/board")
    page.click("header nav >> text=Webhooks")
    page.wait_for_url("**/webhooks")
    assert "No endpoint yet" in page.inner_text("main")

    page.fill("#url", "ftp://erp.agence-demo.fr/telegest")
    page.check("#webhook-add input[value='visit.modified']")
    page.click("#webhook-add button[type=submit]")
    assert "http:// or https://" in page.inner_text("[role=alert]")
    assert query(demo[0], "SELECT id FROM webhook_endpoints") == []

    page.fill("#url", "https://erp.agence-demo.fr/telegest")
    page.fill("#description", "ERP paie")
    for event in ("visit.created", "visit.cancelled", "clock.in", "clock.out"):
        page.check(f"#webhook-add input[value='{event}']")
    page.click("#webhook-add button[type=submit]")
    secret = page.inner_text("#webhook-secret")
    assert secret.startswith("whsec_") and len(secret) == 70
    assert "shown this once" in page.inner_text("#webhook-secret-box")
    [(stored, events)] = query(demo[0], "SELECT secret, events FROM webhook_endpoints")
    assert stored == secret
    assert "visit.modified" in events and "anomaly" not in events
    page.screenshot(path=str(tmp_path / "console-webhooks.png"), full_page=True)

    page.goto(api_server + "/webhooks")
    assert secret not in page.content()
    assert page.locator("#webhook-secret").count() == 0
    assert "https://erp.agence-demo.fr/telegest" in page.inner_text("section.webhook")


def test_a_dead_delivery_is_replayed_and_a_key_revoked(browser, demo, api_server, tmp_path):
    from sqlalchemy import select, update

    from fleet import webhooks
    from fleet.db import make_engine, session_factory
    from fleet.keys import create_api_key
    from fleet.models import Organisation, Outbox, Visit

    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        org = s.scalars(select(Organisation)).one()
        webhooks.create(s, org.id, "https://erp.agence-demo.fr/telegest",
                        ["visit.created", "visit.modified"], "ERP")
        visit = s.scalars(select(Visit).order_by(Visit.id)).first()
        webhooks.visit_created(s, visit)
        s.execute(update(Outbox).values(state="dead", attempts=8,
                                        last_error="HTTP 503 Service Unavailable"))
        create_api_key(s, "manager", "ERP paie", organisation_id=org.id, daily_quota=2000)
        s.commit()
    engine.dispose()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(demo[0], "admin"), "/webhooks")
    row = page.locator("table.deliveries tr.ob-dead")
    assert "HTTP 503" in row.inner_text()
    row.locator("button:has-text('Replay')").click()
    page.wait_for_url("**/webhooks?msg=requeued")
    assert query(demo[0], "SELECT state, attempts FROM outbox") == [("pending", 0)]
    page.screenshot(path=str(tmp_path / "console-webhooks-replayed.png"), full_page=True)

    page.click("header nav >> text=API keys")
    page.wait_for_url("**/apikeys")
    key_row = page.locator("#apikeys tr", has_text="ERP paie")
    assert "0 / 2000" in key_row.inner_text()
    page.screenshot(path=str(tmp_path / "console-apikeys.png"), full_page=True)
    key_row.locator("button:has-text('Revoke')").click()
    page.wait_for_url("**/apikeys?msg=key_revoked")
    assert "revoked" in page.locator("#apikeys tr", has_text="ERP paie").inner_text()
    assert query(demo[0], "SELECT revoked FROM api_keys WHERE label = 'ERP paie'") == [(1,)]
