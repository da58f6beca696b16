"""The console in one language at a time, in a real browser: chromium's own Accept-Language
before sign-in, then a coordinator's choice on /account that the planning and the board follow.
Screenshots go to the test's tmp folder (console-fr-*.png, console-en-*.png); docs/screenshots/
gets copies made by hand."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from tests.browser.test_console import account, sign_in

pytestmark = pytest.mark.browser

PO = Path(__file__).resolve().parents[2] / "fleet" / "locale" / "fr" / "LC_MESSAGES" / "messages.po"


@lru_cache(maxsize=1)
def _strings() -> tuple[frozenset[str], frozenset[str]]:
    """(English, French) texts of the catalog that differ between the two languages and are
    long enough not to be a name or a code: either one on a page gives its language away."""
    from babel.messages.pofile import read_po

    with PO.open("rb") as f:
        catalog = read_po(f, locale="fr")
    english, french = set(), set()
    for m in catalog:
        if not m.id or isinstance(m.id, tuple) or "%" in m.id or "{" in m.id:
            continue
        if m.string and m.string != m.id and len(m.id) >= 8 and len(m.string) >= 8:
            english.add(m.id)
            french.add(m.string)
    return frozenset(english), frozenset(french)


def only(page, lang: str) -> None:
    """The page is in `lang` only: its <html lang>, and no text of the other language."""
    assert page.get_attribute("html", "lang") == lang
    text = page.inner_text("body")
    english, french = _strings()
    other = sorted(s for s in (french if lang == "en" else english) if s in text)
    assert other == [], (page.url, other[:10])


def test_chromium_s_language_picks_the_sign_in_page(browser, demo, api_server):
    for locale, lang, heading in (("fr-FR", "fr", "Connexion"), ("en-US", "en", "Sign in")):
        context = browser.new_context(locale=locale)
        page = context.new_page()
        page.goto(api_server + "/login")
        assert page.inner_text("h1") == heading
        only(page, lang)
        context.close()


def test_a_coordinator_switches_to_english_and_the_console_follows(
        browser, demo, api_server, tmp_path):
    context = browser.new_context(locale="fr-FR")  # a French browser
    page = context.new_page()
    sign_in(page, api_server, account(demo[0], "manager"), "/planning")
    only(page, "fr")
    assert "Tableau" in page.inner_text("header nav")
    assert "Interventions" in page.inner_text(".tabs")
    page.screenshot(path=str(tmp_path / "console-fr-planning.png"), full_page=True)
    page.goto(api_server + "/board")
    only(page, "fr")
    page.screenshot(path=str(tmp_path / "console-fr-board.png"), full_page=True)

    page.click("#account-link")
    page.select_option("#language", "en")
    page.click("#language-form button[type=submit]")
    page.wait_for_url("**/account?msg=language")
    assert page.inner_text("[role=status]") == "Language saved"
    only(page, "en")
    page.screenshot(path=str(tmp_path / "console-en-account.png"), full_page=True)

    page.goto(api_server + "/planning")
    only(page, "en")
    assert "Visits" in page.inner_text(".tabs") and "Board" in page.inner_text("header nav")
    page.screenshot(path=str(tmp_path / "console-en-planning.png"), full_page=True)
    page.goto(api_server + "/board")
    only(page, "en")
    assert "visits" in page.inner_text("#summary")
    page.screenshot(path=str(tmp_path / "console-en-board.png"), full_page=True)
    context.close()

    # the choice belongs to the account, not to the browser: a new French browser signs in
    # and gets English
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    sign_in(page, api_server, "manager@demo.example", "/board")
    only(page, "en")
    context.close()
