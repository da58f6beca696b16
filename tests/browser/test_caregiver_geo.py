"""Where the phone was (issue #11 items 2 and 3), in chromium at 360 px with the position
emulated: the one-time explanation the caregiver accepts, a manual clock-in 5 km from the
home that lands in the review list with proof level "manual", and a manual departure at the
home that a position corroborates and the list leaves out; both proof levels on the visit's
page and the board. Screenshots go to the test's tmp
folder (caregiver-geo.png, console-review-proof.png); docs/screenshots/ gets copies."""
from __future__ import annotations

import pytest

from tests.browser.test_caregiver import FAKE_NFC, PHONE, Setup, no_sideways_scroll
from tests.browser.test_console import account, sign_in
from tests.helpers import wait_until

pytestmark = pytest.mark.browser

HOME = {"latitude": 48.8566, "longitude": 2.3522, "accuracy": 15}
FAR = {"latitude": 48.8566 + 5000 / 111_195, "longitude": 2.3522, "accuracy": 20}  # 5 km N


@pytest.fixture
def setup(api_server, demo):
    s = Setup(api_server, demo[0])
    r = s.api.patch(f"/clients/{s.client_id}", json={"lat": HOME["latitude"],
                                                      "lon": HOME["longitude"]})
    assert r.status_code == 200, r.text
    yield s
    s.api.close()


def manual(page, visit_id: int, reason: str) -> None:
    page.goto(page.url.split("#")[0] + f"#/visit/{visit_id}")
    page.click("#manual")
    page.select_option("#reason-kind", "")
    page.fill("#reason", reason)
    page.click("#manual-ok")


def test_manual_clock_in_far_away_is_reviewed_and_at_home_is_not(browser, api_server, setup,
                                                                  tmp_path):
    context = browser.new_context(**PHONE, permissions=["geolocation"], geolocation=FAR)
    context.add_init_script(FAKE_NFC)
    page = context.new_page()
    page.goto(f"{api_server}/app/enrol?token={setup.token}")
    page.locator(f'[data-visit="{setup.visit_id}"]').wait_for(timeout=15_000)

    # 5 km away: the explanation comes first, once; accepted, the position goes with the event
    manual(page, setup.visit_id, "badge introuvable")
    page.wait_for_selector("#geo-ask")
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-geo.png"))
    page.click("#geo-yes")
    page.wait_for_selector("#current:not([hidden])")
    wait_until(lambda: [e["proof_level"] for e in setup.events()] == ["manual"], 20,
               what="the far manual clock-in matched as a claim")
    [arrival] = setup.events()
    assert arrival["tag"] is None and arrival["visit_id"] == setup.visit_id
    assert arrival["pos"] == [round(FAR["latitude"], 5), FAR["longitude"], 20]

    # at the home: no second explanation, a position near the home corroborates it
    context.set_geolocation(HOME)
    manual(page, setup.visit_id, "badge introuvable")
    page.wait_for_selector("#current", state="hidden")
    assert page.locator("#geo-ask").count() == 0
    wait_until(lambda: len(setup.events()) == 2 and setup.events()[1]["proof_level"], 20,
               what="the manual departure matched")
    departure = next(e for e in setup.events() if e["dir"] == "out")
    assert departure["proof_level"] == "position"
    context.close()

    console = browser.new_page(viewport={"width": 360, "height": 740})
    sign_in(console, api_server, account(setup.db_url, "manager"), "/review")
    console.select_option("select[name=kind]", "manual")
    console.select_option("select[name=proof]", "manual")
    console.click(".filters button[type=submit]")
    console.wait_for_url("**/review?*proof=manual*")
    rows = console.locator(f'#review tr[data-kind="manual"][data-visit="{setup.visit_id}"]')
    assert rows.count() == 1, "the far arrival is to review, the corroborated departure not"
    assert rows.first.get_attribute("data-proof") == "manual"
    assert "manual" in rows.first.locator("td.proof").inner_text()
    assert console.locator("select[name=proof]").input_value() == "manual"
    console.screenshot(path=str(tmp_path / "console-review-proof.png"), full_page=True)
    # the departure has proof level "position": not listed even without the proof filter
    console.goto(f"{api_server}/review?kind=manual")
    rows = console.locator(f'#review tr[data-kind="manual"][data-visit="{setup.visit_id}"]')
    assert rows.count() == 1 and rows.first.get_attribute("data-proof") == "manual"
    # and its far_from_home anomaly is there too
    console.goto(f"{api_server}/review?kind=anomaly")
    far = console.locator(f'#review tr[data-kind="anomaly"][data-visit="{setup.visit_id}"]')
    assert far.count() == 1 and "far_from_home" in far.first.inner_text()
    # the visit's page and the board show both proof levels
    console.goto(f"{api_server}/visits/{setup.visit_id}")
    assert console.locator("#clock-events td.proof").all_inner_texts() == ["manual", "position"]
    console.goto(f"{api_server}/board")
    row = console.locator(f'#rows tr[data-visit="{setup.visit_id}"]')
    assert row.locator('[data-proof-in="manual"]').count() == 1
    assert row.locator('[data-proof-out="position"]').count() == 1
    console.close()
