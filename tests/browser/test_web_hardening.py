"""Finding "web hardening" (issue #14, item 7) in a real chromium: the console and the caregiver
app work under the Content-Security-Policy (no inline script, no inline style) with no
violation reported, and "sign out everywhere" ends the sessions of every browser.
Screenshots go to the test's tmp folder; docs/screenshots/console-account.png is a copy made
by hand."""
from __future__ import annotations

import pytest

from tests.browser.test_caregiver import FAKE_NFC, GEO_DECLINED, PHONE, Setup
from tests.browser.test_console import account, sign_in
from tests.helpers import wait_until

pytestmark = pytest.mark.browser

# every violation the page sees, as the browser reports it to the page itself
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""
CONSOLE_PAGES = ["/board", "/planning", "/review", "/validation", "/funders", "/exports",
                 "/settings", "/outbox", "/devices", "/badges", "/audit", "/account"]


def watch(context, *pages) -> list[str]:
    """Console messages about the policy, and page errors, from every page of this context."""
    seen: list[str] = []
    context.add_init_script(WATCH_CSP)

    def on_page(page) -> None:
        page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text
                or "Refused to" in m.text else None)
        page.on("pageerror", lambda e: seen.append(f"page error: {e}"))
    context.on("page", on_page)
    for page in pages:
        on_page(page)
    return seen


def violations(page) -> list[str]:
    return page.evaluate("window.__csp")


def test_web_hardening_console_works_under_the_csp(browser, demo, api_server, tmp_path):
    context = browser.new_context()
    seen = watch(context)
    page = context.new_page()
    email = account(demo[0], "admin")
    sign_in(page, api_server, email, "/board")
    # the board's refresh now comes from /static/board.js: it must still run
    with page.expect_response(lambda r: "/board/rows" in r.url and r.status == 200,
                              timeout=10_000):
        pass
    assert violations(page) == []
    for path in CONSOLE_PAGES:
        page.goto(api_server + path)
        assert page.url.startswith(api_server + path), path
        assert violations(page) == [], path
    page.goto(api_server + "/devices/demo-r1")
    assert violations(page) == []
    assert seen == []


def test_web_hardening_sign_out_everywhere_in_two_browsers(browser, demo, api_server, tmp_path):
    email = account(demo[0], "manager")
    here, there = browser.new_context(), browser.new_context()
    seen = watch(here)
    page, other = here.new_page(), there.new_page()
    sign_in(page, api_server, email, "/planning")
    sign_in(other, api_server, email, "/planning")
    page.click("#account-link")
    page.wait_for_url(api_server + "/account")
    assert page.locator("#sessions tbody tr").count() == 2
    assert "this one" in page.inner_text("#sessions")
    page.screenshot(path=str(tmp_path / "console-account.png"), full_page=True)
    page.set_viewport_size({"width": 360, "height": 740})  # and on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.click("#sign-out-everywhere button[type=submit]")
    page.wait_for_url("**/login**")
    assert "Signed out everywhere" in page.inner_text("[role=status]")
    other.goto(api_server + "/planning")
    assert "/login" in other.url  # the other browser's session ended too
    page.goto(api_server + "/planning")
    assert "/login" in page.url
    assert seen == [] and violations(page) == []


def test_web_hardening_caregiver_app_works_under_the_csp(browser, demo, api_server, tmp_path):
    setup = Setup(api_server, demo[0])
    try:
        context = browser.new_context(**PHONE)
        context.add_init_script(FAKE_NFC + GEO_DECLINED)
        seen = watch(context)
        page = context.new_page()
        page.goto(f"{api_server}/app/enrol?token={setup.token}")
        card = page.locator(f'[data-visit="{setup.visit_id}"]')
        card.wait_for(timeout=15_000)
        # the service worker registers and takes the page (offline use)
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15_000)
        card.click()
        page.click("#nfc-start")
        page.wait_for_selector("#nfc-on")
        assert page.evaluate(f"window.__tap({setup.tag!r})") == 1
        wait_until(lambda: len(setup.events()) == 1, 15, what="the clock-in stored")
        page.goto(f"{api_server}/app/#/week")
        page.goto(f"{api_server}/app/#/phone")
        page.wait_for_selector("#sync-now")
        assert violations(page) == []
        assert seen == []
        context.close()
    finally:
        setup.api.close()


def test_web_hardening_enrolment_link_is_the_public_url(browser, demo, api_server):
    """`telegest fleet api` with no TELEGEST_PUBLIC_URL: links to itself on 127.0.0.1."""
    setup = Setup(api_server, demo[0], ident="phone-bob")
    try:
        context = browser.new_context()
        seen = watch(context)
        page = context.new_page()
        sign_in(page, api_server, account(demo[0], "technician"), "/devices/phone-bob")
        page.click("#enrol button")
        url = page.inner_text("#enrolment-url")
        assert url.startswith(api_server + "/app/enrol?token="), url
        assert page.locator("#enrolment-qr svg").count() == 1
        assert violations(page) == [] and seen == []
        context.close()
    finally:
        setup.api.close()
