"""Funders and funding plans in a real browser: a funder with its identifier, a plan from the
client's page, an overlap refused. Screenshots go to the test's tmp folder (console-funders*,
console-funding-plan*); docs/screenshots/ gets copies made by hand."""
from __future__ import annotations

import pytest

from tests.browser.test_console import account, query, sign_in

pytestmark = pytest.mark.browser


def test_a_funder_and_a_clients_plan(browser, demo, api_server, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, api_server, account(demo[0], "manager"), "/funders")
    page.click("#new-funder")
    page.select_option("#kind", "APA")
    page.fill("#name", "Conseil départemental du Val-de-Marne")
    page.fill("#identifier", "CD94 APA")
    page.click("#funder-form button[type=submit]")
    assert "identifier" in page.inner_text("[role=alert]")  # a space: refused, values kept
    assert page.input_value("#name") == "Conseil départemental du Val-de-Marne"
    page.fill("#identifier", "CD94-APA")
    page.click("#funder-form button[type=submit]")
    page.wait_for_url("**/funders?msg=created")
    assert "CD94-APA" in page.inner_text("#funders")

    client_id, client_name = query(demo[0], "SELECT id, name FROM clients ORDER BY id")[0]
    page.goto(f"{api_server}/planning/clients/{client_id}")
    page.click("#client-plans")
    page.click("#new-plan")
    assert page.locator("#client_id option:checked").inner_text() == client_name
    page.select_option("#funder_id", index=1)
    page.fill("#reference", "APA-94-000123")
    page.fill("#beneficiary_ref", "B94-0042")
    page.fill("#minutes_per_month", "1200")
    page.fill("#valid_from", "2026-01-01")
    page.screenshot(path=str(tmp_path / "console-funding-plan.png"), full_page=True)
    page.click("#plan-form button[type=submit]")
    page.wait_for_url(f"**/funders/plans?client={client_id}*")
    assert "APA-94-000123" in page.inner_text("#funding-plans")
    page.screenshot(path=str(tmp_path / "console-funding-plans.png"), full_page=True)

    page.click("#new-plan")  # a second open-ended plan of the same funder overlaps
    page.select_option("#funder_id", index=1)
    page.fill("#reference", "APA-94-000124")
    page.fill("#valid_from", "2026-06-01")
    page.click("#plan-form button[type=submit]")
    assert "APA-94-000123" in page.inner_text("[role=alert]")
    assert len(query(demo[0], "SELECT id FROM funding_plans")) == 1
    page.goto(api_server + "/funders")
    page.screenshot(path=str(tmp_path / "console-funders.png"), full_page=True)

    phone = browser.new_page(viewport={"width": 360, "height": 740})
    sign_in(phone, api_server, "manager@demo.example", "/funders")
    for path in ("/funders", "/funders/new", "/funders/plans", "/funders/plans/new"):
        phone.goto(api_server + path)
        name = path.strip("/").replace("/", "-")
        phone.screenshot(path=str(tmp_path / f"console-360-{name}.png"), full_page=True)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} scrolls sideways on a phone ({width}px)"


def test_the_exports_page_downloads_a_file(browser, demo, api_server, tmp_path):
    import sqlalchemy as sa

    engine = sa.create_engine(demo[0])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE organisations SET siret = '12345678900011'"))
    engine.dispose()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, api_server, account(demo[0], "manager"), "/exports")
    page.select_option("#kind", "payroll")
    page.select_option("#dialect", "excel-fr")
    page.screenshot(path=str(tmp_path / "console-exports.png"), full_page=True)
    with page.expect_download() as got:
        page.click("#export-form button[type=submit]")
    download = got.value
    assert download.suggested_filename.startswith("payroll-org")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    assert path.read_bytes().startswith("\ufeffcaregiver_id;caregiver;period".encode())
    # a range backwards: the form again, with the message
    page.fill("#from", "2026-11-30")
    page.fill("#to", "2026-11-01")
    page.click("#export-form button[type=submit]")
    assert "before it starts" in page.inner_text("[role=alert]")
