"""Absences and the professional card in real chromium: the caregiver asks for an absence in
the app at 360 px (offline first: queued, sent when the network is back), the manager approves
it in the console, the visit it covers shows "to replace" in the console and the app shows the
decision; the office sets up the card and uploads the photo, the app shows the card with its
QR code, and /verify/<token> answers valid, then not valid once the card is revoked.
Screenshots go to the test's tmp folder; docs/screenshots/ gets copies made by hand."""
from __future__ import annotations

import struct
import time
import zlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.browser.test_caregiver import PHONE, Setup, no_sideways_scroll, open_app
from tests.browser.test_console import account, sign_in
from tests.helpers import wait_until

pytestmark = pytest.mark.browser
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def setup(api_server, demo):
    s = Setup(api_server, demo[0])
    yield s
    s.api.close()


def png(width: int = 90, height: int = 112) -> bytes:
    """A real PNG (a head-and-shoulders shape on blue), built without an imaging library."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            head = (x - width / 2) ** 2 + (y - height * .35) ** 2 < (width * .22) ** 2
            body = y > height * .62 and abs(x - width / 2) < width * (.1 + (y / height - .5))
            row += bytes((235, 235, 240) if head or body else (70, 110, 160))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def test_absence_asked_offline_approved_in_the_console_visit_to_replace(
        browser, api_server, setup, demo, tmp_path):
    day = (datetime.now(PARIS) + timedelta(days=3)).date()
    start = datetime(day.year, day.month, day.day, 10, 0, tzinfo=PARIS)
    r = setup.api.post("/visits", json={
        "client_id": setup.client_id, "caregiver_id": setup.caregiver_id,
        "planned_start": start.isoformat(), "planned_end": (start + timedelta(hours=1))
        .isoformat()})
    assert r.status_code == 201, r.text
    covered = r.json()["id"]

    context, app = open_app(browser, api_server, setup.token)
    app.locator(f'[data-visit="{setup.visit_id}"]').wait_for(timeout=15_000)
    app.click('nav a[data-tab="absences"]')
    app.wait_for_selector("#absence-form")
    context.set_offline(True)
    app.wait_for_selector('#net[data-state="offline"]')
    app.select_option("#ab-kind", "leave")
    app.fill("#ab-from", day.isoformat())
    app.fill("#ab-to", day.isoformat())
    app.fill("#ab-note", "Mariage de ma sœur")
    app.click("#ab-send")
    app.wait_for_selector('[data-absence-state="queued"]')
    no_sideways_scroll(app)
    time.sleep(2)  # two polls while offline: nothing can leave the phone
    assert setup.api.get("/absences").json()["total"] == 0
    app.screenshot(path=str(tmp_path / "caregiver-absence-offline.png"), full_page=True)
    context.set_offline(False)
    app.wait_for_selector('[data-absence-state="requested"]', timeout=15_000)
    asked = wait_until(lambda: setup.api.get("/absences").json()["items"], 15,
                       what="the request stored")
    assert [(a["state"], a["kind"], a["first_day"], a["note"]) for a in asked] == [
        ("requested", "leave", day.isoformat(), "Mariage de ma sœur")]
    assert covered in asked[0]["visits_covered"]
    app.screenshot(path=str(tmp_path / "caregiver-absence.png"), full_page=True)

    console = browser.new_page(viewport={"width": 1100, "height": 900})
    sign_in(console, api_server, account(demo[0], "manager"), "/absences")
    row = console.locator(f'#absences tr[data-absence="{asked[0]["id"]}"]')
    assert "Mariage de ma sœur" in row.inner_text()
    row.locator("form.approve button").click()
    console.wait_for_selector("#to-replace tr[data-visit]")
    assert console.locator(f'#to-replace tr[data-visit="{covered}"]').count() == 1
    console.screenshot(path=str(tmp_path / "console-absences.png"), full_page=True)
    console.goto(f"{api_server}/planning?day={day.isoformat()}")
    line = console.locator(f'#visits tr[data-visit="{covered}"]')
    assert "to replace" in line.inner_text()
    console.screenshot(path=str(tmp_path / "console-planning-to-replace.png"), full_page=True)
    assert setup.api.get("/absences/to-replace").json()["items"][0]["visit_id"] == covered
    console.set_viewport_size({"width": 360, "height": 740})
    console.goto(f"{api_server}/absences")
    assert console.evaluate("document.documentElement.scrollWidth") <= 360
    console.screenshot(path=str(tmp_path / "console-absences-360.png"), full_page=True)
    console.close()

    app.wait_for_selector('[data-absence-state="approved"]', timeout=15_000)
    assert "Acceptée" in app.inner_text("#absence-list")
    app.screenshot(path=str(tmp_path / "caregiver-absence-approved.png"), full_page=True)
    # a request the fleet refuses (it overlaps) is kept on the phone with the reason
    app.fill("#ab-from", day.isoformat())
    app.fill("#ab-to", day.isoformat())
    app.click("#ab-send")
    app.wait_for_selector('[data-absence-state="rejected"]', timeout=15_000)
    assert "chevauche" in app.inner_text('[data-absence-state="rejected"]')
    assert setup.api.get("/absences").json()["total"] == 1
    context.close()


def test_card_set_up_in_the_console_shown_in_the_app_and_verified(
        browser, api_server, setup, demo, tmp_path):
    photo = tmp_path / "alice.png"
    photo.write_bytes(png())
    not_image = tmp_path / "alice.jpg"
    not_image.write_bytes(b"MZ\x90\x00 this is no photo")
    console = browser.new_page(viewport={"width": 1100, "height": 900})
    sign_in(console, api_server, account(demo[0], "manager"), "/planning/caregivers")
    console.locator(f'#things tr[data-id="{setup.caregiver_id}"] a', has_text="Card").click()
    console.wait_for_selector("#card-form")
    today = datetime.now(PARIS).date()
    console.fill("#number", "CP-2026-0042")
    console.fill("#title", "Auxiliaire de vie sociale")
    console.fill("#valid_from", (today - timedelta(days=30)).isoformat())
    console.fill("#valid_until", (today + timedelta(days=335)).isoformat())
    console.click("#card-form button[type=submit]")
    console.wait_for_selector("#card-qr svg")
    console.set_input_files("#photo", str(not_image))
    console.click("#photo-form button[type=submit]")
    assert "JPEG, PNG or WebP" in console.inner_text("#card-error")  # chromium asks English
    console.set_input_files("#photo", str(photo))
    console.click("#photo-form button[type=submit]")
    console.wait_for_selector("#card-preview img.procard-photo")
    console.screenshot(path=str(tmp_path / "console-card.png"), full_page=True)
    verify_path = "/verify/" + console.inner_text("#verify-url").rsplit("/verify/", 1)[1]

    context, app = open_app(browser, api_server, setup.token)
    app.locator(f'[data-visit="{setup.visit_id}"]').wait_for(timeout=15_000)
    app.click('nav a[data-tab="absences"]')
    app.click("#card-link")
    app.wait_for_selector("#procard", timeout=15_000)
    assert app.inner_text("#pc-name") == "Alice Martin"
    assert app.inner_text("#pc-number") == "CP-2026-0042"
    assert "Carte valide" in app.inner_text("#pc-state")
    assert app.evaluate("document.querySelector('#pc-qr').naturalWidth") > 0
    assert app.evaluate("document.querySelector('.pc-photo').naturalWidth") == 90
    no_sideways_scroll(app)
    app.screenshot(path=str(tmp_path / "caregiver-card.png"), full_page=True)
    # offline, the card is still there
    context.set_offline(True)
    app.reload()
    app.wait_for_selector("#procard", timeout=15_000)
    context.close()

    visitor = browser.new_context(**PHONE).new_page()  # anyone who scans the code
    visitor.goto(api_server + verify_path)
    assert visitor.get_attribute("#verdict", "data-valid") == "1"
    assert visitor.inner_text("#holder-name") == "Alice Martin"
    assert "CP-2026-0042" not in visitor.content() and "data:image" not in visitor.content()
    no_sideways_scroll(visitor)
    visitor.screenshot(path=str(tmp_path / "verify-valid.png"), full_page=True)

    console.fill("#revoke-form input[name=why]", "carte perdue")
    console.click("#revoke-form button[type=submit]")
    console.wait_for_selector("text=Card revoked")
    visitor.reload()
    assert visitor.get_attribute("#verdict", "data-valid") == "0"
    assert "Alice" not in visitor.content()
    visitor.screenshot(path=str(tmp_path / "verify-revoked.png"), full_page=True)
    console.set_viewport_size({"width": 360, "height": 740})
    console.reload()
    assert console.evaluate("document.documentElement.scrollWidth") <= 360
    console.close()
