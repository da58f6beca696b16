"""The client record in a real chromium: a manager defines a field and fills Mme Durand's
record in the console (a wrong value refused first); the caregiver who visits her today sees
the codes, the notes, the family's phone as a tap-to-call link and the field on her phone at
360 px, offline too. Screenshots go to the test's tmp folder (caregiver-record.png,
console-client-record.png)."""
from __future__ import annotations

import pytest

from tests.browser.test_caregiver import no_sideways_scroll, open_app, setup  # noqa: F401
from tests.browser.test_console import account, sign_in

pytestmark = pytest.mark.browser


def test_the_office_fills_the_record_and_todays_caregiver_sees_it(browser, api_server, demo,
                                                                  setup, tmp_path):  # noqa: F811
    office = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(office, api_server, account(demo[0], "manager"), "/planning/fields")
    office.fill("#label", "Allergies")
    office.select_option("#visible_to", "caregivers")
    office.click("#field-form button[type=submit]")
    office.wait_for_url("**/planning/fields?msg=created")
    office.fill("#label", "Reste à charge")
    office.select_option("#kind", "number")
    office.click("#field-form button[type=submit]")
    office.wait_for_url("**/planning/fields?msg=created")

    office.goto(f"{api_server}/planning/clients/{setup.client_id}")
    office.click("#client-record")
    office.fill("#access_code", "A1234")
    office.fill("#key_box", "à gauche de la porte, code 4321")
    office.fill("#family_contacts", "Marc Durand; fils; 06 12 34 56 78")
    office.fill("#care_notes", "Ne pas ouvrir les volets.\nEau gazeuse uniquement.")
    office.fill("#custom_allergies", "pénicilline")
    office.fill("#custom_reste_a_charge", "beaucoup")
    office.click("#record-form button[type=submit]")
    assert "is not a number" in office.inner_text("[role=alert]")
    assert office.input_value("#access_code") == "A1234"  # what was typed is kept
    office.fill("#custom_reste_a_charge", "12,50")
    office.click("#record-form button[type=submit]")
    office.wait_for_url("**/record?msg=saved")
    assert office.input_value("#custom_reste_a_charge") == "12.5"
    office.screenshot(path=str(tmp_path / "console-client-record.png"), full_page=True)

    context, page = open_app(browser, api_server, setup.token)
    page.locator(f'[data-visit="{setup.visit_id}"]').click(timeout=15_000)
    page.click("text=Fiche usager")
    page.wait_for_selector("#client-record")
    text = page.inner_text("#client-record")
    assert "A1234" in text and "code 4321" in text and "pénicilline" in text
    assert "Eau gazeuse uniquement." in text and "Reste à charge" not in text
    assert page.get_attribute("#client-record a.tel", "href") == "tel:0612345678"
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-record.png"), full_page=True)
    # offline, the record is still there (it came with the planning)
    context.set_offline(True)
    page.reload()
    page.locator(f'[data-visit="{setup.visit_id}"]').click(timeout=15_000)
    page.click("text=Fiche usager")
    assert "A1234" in page.inner_text("#client-record")
    context.close()
