"""The manager's board in a real browser: sign in, see today, watch a clock-in arrive live."""
from __future__ import annotations

import pytest

from tests.helpers import find_device_with_visit_now
from tools.sim.reader import VirtualReader

pytestmark = pytest.mark.browser


PASSWORD = "browser test password"


def manager_account(db_url: str) -> str:
    """A manager of the console (email, password PASSWORD), as `telegest fleet user add`."""
    from fleet.console.users import create_user
    from fleet.db import make_engine, session_factory

    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        user = create_user(s, "manager@demo.example", "manager", PASSWORD)
        s.commit()
    engine.dispose()
    return user.email


def sign_in(page, base: str, email: str) -> None:
    page.goto(base + "/board")
    assert "/login" in page.url, "the board asks for a sign-in first"
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_url(base + "/board")


def test_a_clock_in_shows_on_the_board_without_a_reload(browser, demo, mosquitto, worker,
                                                         api_server, tmp_path):
    db_url, _ = demo
    ident, config, (visit_id, badge) = find_device_with_visit_now(db_url)
    page = browser.new_page()
    sign_in(page, api_server, manager_account(db_url))
    row = page.locator(f'tr[data-visit="{visit_id}"]')
    assert row.count() == 1
    assert "in progress" not in row.inner_text()
    page.evaluate("window.__sameDocument = true")

    reader = VirtualReader(ident, mosquitto.host, mosquitto.port, tmp_path / "flash", config,
                           ack_timeout=2.0).start()
    try:
        assert reader.connected.wait(10)
        assert reader.tap(badge) == "in"
        page.wait_for_selector(f'tr[data-visit="{visit_id}"].st-in_progress', timeout=10_000)
    finally:
        reader.stop()
    assert page.evaluate("window.__sameDocument === true"), "updated without a reload"
    page.screenshot(path=str(tmp_path / "board.png"), full_page=True)


def test_wrong_key_is_refused_with_a_clear_message(browser, demo, api_server):
    page = browser.new_page()
    page.goto(api_server + "/board/login")
    page.click("summary")  # the API-key sign-in, folded under the password form
    page.fill("#key", "not-a-key")
    page.click("#key-login button[type=submit]")
    assert "Unknown or revoked key" in page.inner_text("[role=alert]")
    page.goto(api_server + "/board")
    assert "/login" in page.url


def test_board_fits_a_360_pixel_phone(browser, demo, api_server, tmp_path):
    page = browser.new_page(viewport={"width": 360, "height": 740})
    sign_in(page, api_server, manager_account(demo[0]))
    assert page.locator("#rows tr").count() > 1
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page scrolls sideways on a phone ({width}px)"
    page.screenshot(path=str(tmp_path / "board-360.png"), full_page=True)


def test_board_shows_the_clocking_devices_clock_offset(browser, demo, api_server, tmp_path):
    """Issue #11 item 4: the visit's row shows the last measured clock offset of the device
    that clocked it, as a warning tag beyond 5 minutes."""
    import json
    import time
    from datetime import datetime, timezone

    from fleet.db import make_engine, session_factory
    from fleet.ingest import handle_clock
    from fleet.matching import match_pending
    db_url, _ = demo
    ident, _config, (visit_id, badge) = find_device_with_visit_now(db_url)
    now = int(time.time())
    engine = make_engine(db_url)
    with session_factory(engine)() as s:  # the box's clock is 412 s behind the fleet's
        handle_clock(s, ident, json.dumps({"now": now - 412, "events": [
            {"seq": 1, "badge": badge, "dir": "in", "method": "nfc", "ts": now - 415,
             "tq": "synced", "visit": visit_id}]}).encode(),
                     datetime.fromtimestamp(now, timezone.utc))
        s.commit()
        match_pending(s)
        s.commit()
    engine.dispose()
    page = browser.new_page()
    sign_in(page, api_server, manager_account(db_url))
    row = page.locator(f'tr[data-visit="{visit_id}"]')
    offset = row.locator(".clock")
    assert offset.inner_text() == "Δt +412 s"
    assert "clock-wrong" in offset.get_attribute("class")
    assert "clock offset" in offset.get_attribute("title")  # chromium asks English
    page.screenshot(path=str(tmp_path / "console-board-clock.png"), full_page=True)
    row.screenshot(path=str(tmp_path / "console-board-clock-row.png"))
