"""The caregiver's link with the office in a real chromium at 360 px (fleet/caregiver/static/
inbox.js): a mandatory message blocks the app until "J'ai lu" and the console then shows the
read receipt; the agency's emergency numbers are one-tap `tel:` links, offline too, and the
directory finds a colleague's work number; a message and a call-back written offline go out
on reconnect, and the phone shows when the office took the call-back. Screenshots go to the
test's tmp folder (console-messages.png, caregiver-mandatory.png, caregiver-emergency.png,
caregiver-directory.png, caregiver-messages.png, console-message-receipts.png,
console-callbacks.png, console-inbox.png); docs/screenshots/ gets copies."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.browser.test_caregiver import Setup, no_sideways_scroll, open_app
from tests.browser.test_console import account, query, sign_in
from tests.helpers import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def setup(api_server, demo):
    s = Setup(api_server, demo[0])
    s.org_id = s.api.get(f"/caregivers/{s.caregiver_id}").json()["organisation_id"]
    yield s
    s.api.close()


def covers_the_screen(page, selector: str) -> bool:
    """What a tap anywhere on the screen would hit is inside `selector`."""
    return page.evaluate("""(sel) => [[180, 60], [180, 400], [40, 715], [330, 715]].every(
        ([x, y]) => document.querySelector(sel).contains(document.elementFromPoint(x, y)))""",
                         selector)


def test_a_mandatory_message_blocks_the_app_until_acknowledged(browser, api_server, setup,
                                                               demo, tmp_path):
    # the coordinator writes it in the console, to Alice only, mandatory
    console = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(console, api_server, account(demo[0], "manager"), "/messages")
    console.check(f'input[name=caregiver][value="{setup.caregiver_id}"]')
    console.fill("#subject", "Protocole canicule")
    console.fill("#body", "Faites boire les usagers toutes les heures.\n"
                          "Fermez les volets à midi.")
    console.check("#mandatory")
    console.screenshot(path=str(tmp_path / "console-messages.png"), full_page=True)
    console.click("#send")
    console.wait_for_url("**/messages/*?msg=sent")
    message_id = int(console.url.split("/messages/")[1].split("?")[0])
    assert "waiting" in console.locator("#receipts .ack").inner_text()
    context, page = open_app(browser, api_server, setup.token)
    gate = page.locator("#mandatory")
    gate.wait_for(timeout=15_000)
    assert "Protocole canicule" in gate.inner_text() and "volets" in gate.inner_text()
    assert covers_the_screen(page, "#mandatory"), "the planning and the tabs are out of reach"
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-mandatory.png"))
    # going elsewhere does not get round it
    page.evaluate("location.hash = '#/week'")
    assert page.locator("#mandatory").is_visible() and covers_the_screen(page, "#mandatory")
    # read offline: the acknowledgement waits in the phone's queue for the network
    context.set_offline(True)
    page.wait_for_selector('#net[data-state="offline"]')
    page.click("#mandatory-ack")
    gate.wait_for(state="detached")
    page.locator(f'[data-visit="{setup.visit_id}"]').first.wait_for()
    tapped = datetime.now(timezone.utc)

    def receipt():
        return setup.api.get(f"/messages/{message_id}").json()["receipts"][0]
    assert receipt()["delivered_at"] and receipt()["acknowledged_at"] is None
    context.set_offline(False)
    page.evaluate("dispatchEvent(new Event('online'))")
    got = wait_until(lambda: (r := receipt())["acknowledged_at"] and r, 20,
                     what="the acknowledgement at the fleet")
    assert got["read_at"] and datetime.fromisoformat(got["acknowledged_at"]) <= tapped, \
        "the time it was tapped, not the time it arrived"
    page.reload()
    page.locator(f'[data-visit="{setup.visit_id}"]').first.wait_for(timeout=15_000)
    assert page.locator("#mandatory").count() == 0, "acknowledged once is enough"
    context.close()

    console.goto(f"{api_server}/messages/{message_id}")
    row = console.locator(f'#receipts tr[data-caregiver="{setup.caregiver_id}"]')
    assert "Alice Martin" in row.inner_text()
    assert "en attente" not in row.locator(".ack").inner_text()
    assert row.locator(".ack").inner_text()[:4].isdigit()
    assert "rc-done" in row.get_attribute("class")
    console.screenshot(path=str(tmp_path / "console-message-receipts.png"), full_page=True)
    console.close()


def test_emergency_numbers_are_tel_links_offline_and_the_directory_searches(
        browser, api_server, setup, demo, tmp_path):
    r = setup.api.put("/emergency-numbers", params={"organisation_id": setup.org_id}, json={
        "emergency": [{"label": "Astreinte de l'agence", "number": "06 12 34 56 78"},
                      {"label": "SAMU", "number": "15"}, {"label": "Police", "number": "17"}],
        "office": [{"label": "Accueil de l'agence", "number": "04 72 00 00 00"}],
        "directory_colleagues": True})
    assert r.status_code == 200, r.text
    people = setup.api.get("/caregivers", params={"limit": 100}).json()["items"]
    colleague = next(p for p in people if p["id"] != setup.caregiver_id)
    assert setup.api.patch(f"/caregivers/{colleague['id']}", json={
        "work_phone": "07 00 00 00 01", "phone": "06 99 99 99 99"}).status_code == 200
    context, page = open_app(browser, api_server, setup.token)
    page.locator(f'[data-visit="{setup.visit_id}"]').first.wait_for(timeout=15_000)
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15_000)
    context.set_offline(True)
    page.reload()
    page.locator(f'[data-visit="{setup.visit_id}"]').first.wait_for(timeout=15_000)
    page.click('#tabs a[data-tab="phone"]')
    links = page.locator("#emergency a")
    links.first.wait_for()
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        "tel:0612345678", "tel:15", "tel:17"]
    assert "Astreinte de l'agence" in links.first.inner_text()
    assert page.locator('a[href="tel:112"]').count() == 0, "the agency's numbers replace 112"
    assert page.get_attribute("#net", "data-state") == "offline"
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-emergency.png"), full_page=True)

    page.click('a[href="#/directory"]')
    page.locator("#dir-search").wait_for()
    assert page.locator('a.contact[href="tel:0700000001"]').count() == 1
    assert page.locator('a[href="tel:0699999999"]').count() == 0, "never a private number"
    page.fill("#dir-search", colleague["name"].split()[0].lower())
    visible = page.locator("a.contact:visible")
    assert visible.count() == 1 and visible.first.get_attribute("href") == "tel:0700000001"
    page.fill("#dir-search", "accueil")
    assert page.locator("a.contact:visible").first.get_attribute("href") == "tel:0472000000"
    page.fill("#dir-search", "")
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-directory.png"), full_page=True)
    context.close()


def test_a_message_and_a_call_back_made_offline_go_out_on_reconnect(
        browser, api_server, setup, demo, tmp_path):
    context, page = open_app(browser, api_server, setup.token)
    page.locator(f'[data-visit="{setup.visit_id}"]').first.wait_for(timeout=15_000)
    context.set_offline(True)
    page.wait_for_selector('#net[data-state="offline"]')
    page.click('#tabs a[data-tab="messages"]')
    page.click("#write")
    page.fill("#w-subject", "Clé introuvable")
    page.fill("#w-body", "La boîte à clés est vide, j'attends devant la porte.")
    page.select_option("#w-visit", str(setup.visit_id))
    page.click("#w-send")
    page.locator("#pending-writes").wait_for()
    assert "à envoyer" in page.locator(".card.sent").first.inner_text()
    page.click("#callback")
    page.fill("#cb-reason", "Usager absent")
    page.click("#cb-send")
    page.locator(".callback").first.wait_for()
    assert "En attente de rappel" in page.locator(".callback").first.inner_text()
    assert query(demo[0], "SELECT count(*) FROM messages")[0][0] == 0

    context.set_offline(False)
    page.evaluate("dispatchEvent(new Event('online'))")
    inbox = wait_until(lambda: setup.api.get("/messages", params={
        "direction": "to_office", "organisation_id": setup.org_id}).json()["items"], 20,
        what="the message at the office")
    assert inbox[0]["subject"] == "Clé introuvable" and inbox[0]["visit_id"] == setup.visit_id
    (waiting,) = wait_until(lambda: setup.api.get("/callbacks", params={
        "organisation_id": setup.org_id}).json()["items"], 20, what="the call-back request")
    assert waiting["reason"] == "Usager absent"
    console = browser.new_page(viewport={"width": 1280, "height": 700})
    sign_in(console, api_server, account(demo[0], "manager"), "/callbacks")
    row = console.locator(f'#callbacks tr[data-callback="{waiting["id"]}"]')
    assert "Usager absent" in row.inner_text() and "min" in row.locator(".waiting").inner_text()
    console.screenshot(path=str(tmp_path / "console-callbacks.png"), full_page=True)
    row.locator("button").click()
    console.locator("#callbacks-taken", has_text="Usager absent").wait_for()
    console.goto(api_server + "/messages/inbox")
    assert "Clé introuvable" in console.locator("#inbox").inner_text()
    console.screenshot(path=str(tmp_path / "console-inbox.png"), full_page=True)
    console.close()
    page.click('#tabs a[data-tab="messages"]')
    page.locator(".callback", has_text="Pris en charge").wait_for(timeout=20_000)
    page.locator("#pending-writes").wait_for(state="detached")
    assert "envoyé" in page.locator(".card.sent").first.inner_text()
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-messages.png"), full_page=True)
    assert query(demo[0], "SELECT count(*) FROM messages")[0][0] == 1, "sent once"
    context.close()
