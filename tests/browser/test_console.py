"""The manager console in a real browser: sign in, plan a visit, import a CSV, declare a device
lost, roles, and every page at 360 px. Screenshots go to the test's tmp folder (console-*.png);
docs/screenshots/ gets copies made by hand, never by the suite."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

PASSWORD = "browser test password"


def account(db_url: str, role: str) -> str:
    from fleet.console.users import create_user
    from fleet.db import make_engine, session_factory

    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        user = create_user(s, f"{role}@demo.example", role, PASSWORD)
        s.commit()
    engine.dispose()
    return user.email


def sign_in(page, base: str, email: str, then: str) -> None:
    page.goto(base + then)
    assert "/login" in page.url
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_url(base + then)


def query(db_url: str, sql: str, **params):
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), params).all()
    engine.dispose()
    return rows


def test_sign_in_see_the_board_and_plan_a_visit(browser, demo, api_server, tmp_path):
    page = browser.new_page()
    sign_in(page, api_server, account(demo[0], "manager"), "/board")
    assert page.locator("#rows tr").count() > 1
    page.screenshot(path=str(tmp_path / "console-board.png"), full_page=True)
    caregiver = page.locator("select[name=caregiver] option").nth(1).inner_text()
    page.select_option("select[name=caregiver]", label=caregiver)
    page.click(".filters button[type=submit]")
    rows = page.locator("#rows tr")
    assert rows.count() >= 1 and all(caregiver in rows.nth(i).inner_text()
                                     for i in range(rows.count()))

    page.goto(api_server + "/planning?day=2030-01-07")
    page.click("#new-visit")
    page.select_option("#client_id", index=1)
    page.select_option("#caregiver_id", index=1)
    page.fill("#start", "09:15")
    page.fill("#end", "10:45")
    page.screenshot(path=str(tmp_path / "console-visit-form.png"), full_page=True)
    page.click("#visit-form button[type=submit]")
    page.wait_for_url("**/planning?day=2030-01-07*")
    assert "Created" in page.inner_text("[role=status]")
    assert "09:15–10:45" in page.inner_text("#visits")
    page.go_back()  # the browser's back button, then submit the same form again
    page.click("#visit-form button[type=submit]")
    assert "Already saved" in page.inner_text("[role=status]")
    assert len(query(demo[0], "SELECT id FROM visits WHERE planned_start >= '2030-01-01'")) == 1
    page.screenshot(path=str(tmp_path / "console-planning.png"), full_page=True)


def test_csv_import_preview_shows_an_error_row_then_a_fixed_file_imports(
        browser, demo, api_server, tmp_path):
    info = demo[1]
    v = info["visits"][0]
    bad = tmp_path / "planning-bad.csv"
    good = tmp_path / "planning.csv"
    lines = ["usager;intervenant;prestation;date;début;fin",
             f"{v['client']};{v['caregiver']};;14/01/2030;08:00;09:00"]
    bad.write_bytes("\n".join(lines + [f"{v['client']};{v['caregiver']};;32/01/2030;08:00;"
                                       "09:00"]).encode("cp1252"))
    good.write_bytes("\n".join(lines + [f"{v['client']};{v['caregiver']};;15/01/2030;08:00;"
                                        "09:00"]).encode("cp1252"))
    page = browser.new_page()
    sign_in(page, api_server, account(demo[0], "manager"), "/planning/import")
    page.set_input_files("#file", str(bad))
    page.click("#upload button[type=submit]")
    errors = page.locator("#import-errors tr.import-error")
    assert errors.count() == 1
    assert "3" in errors.first.inner_text() and "is not a date" in errors.first.inner_text()
    assert page.locator("#confirm").count() == 0
    page.screenshot(path=str(tmp_path / "console-import-errors.png"), full_page=True)

    page.set_input_files("#file", str(good))
    page.click("#upload button[type=submit]")
    assert page.locator("#import-errors").count() == 0
    assert page.locator("#import-rows tbody tr").count() == 2
    page.screenshot(path=str(tmp_path / "console-import-preview.png"), full_page=True)
    page.click("#confirm button[type=submit]")
    assert "Planning imported" in page.inner_text("[role=status]")
    assert len(query(demo[0], "SELECT id FROM visits WHERE planned_start >= '2030-01-01'")) == 2


def test_declare_a_device_lost_with_a_reason(browser, demo, api_server, tmp_path):
    page = browser.new_page()
    sign_in(page, api_server, account(demo[0], "manager"), "/devices")
    page.screenshot(path=str(tmp_path / "console-devices.png"), full_page=True)
    page.click('a[href="/devices/demo-r3"]')
    assert page.locator("#provision").count() == 0, "a manager has no provision button"
    page.click("#declare-lost")
    page.screenshot(path=str(tmp_path / "console-lost.png"), full_page=True)
    page.check("#confirm")
    page.evaluate("document.getElementById('reason').removeAttribute('required')")
    page.click("#lost-form button[type=submit]")
    assert "Give the reason" in page.inner_text("[role=alert]")  # the server checks it too
    page.fill("#reason", "reader taken from the client's home")
    page.check("#confirm")
    page.click("#lost-form button[type=submit]")
    page.wait_for_url(api_server + "/devices/demo-r3*")
    assert "blocked" in page.inner_text("#device-status")
    assert "reader taken from the client's home" in page.inner_text("#device-audit")
    assert query(demo[0], "SELECT status FROM devices WHERE ident = 'demo-r3'")[0][0] == \
        "blocked"
    page.goto(api_server + "/audit")
    assert "reader taken from the client's home" in page.inner_text("#audit")
    page.screenshot(path=str(tmp_path / "console-audit.png"), full_page=True)


def test_a_manager_is_refused_provisioning(browser, demo, api_server):
    page = browser.new_page()
    sign_in(page, api_server, account(demo[0], "manager"), "/devices/demo-r2")
    assert page.locator("#provision").count() == 0
    status = page.evaluate("""async () => {
        const body = new URLSearchParams({csrf: document.querySelector('input[name=csrf]').value});
        const r = await fetch('/devices/demo-r2/provision', {method: 'POST', body});
        return r.status; }""")
    assert status == 403
    assert not query(demo[0], "SELECT id FROM audit_log WHERE action = 'provision'")


@pytest.mark.parametrize("role", ["manager", "technician"])
def test_every_page_fits_a_360_pixel_phone(browser, demo, api_server, tmp_path, role):
    page = browser.new_page(viewport={"width": 360, "height": 740})
    pages = (["/board", "/planning", "/planning/visits/new", "/planning/clients",
              "/planning/services/new", "/planning/import"] if role == "manager" else [])
    pages += ["/devices", "/devices/demo-r1", "/audit"]
    if role == "manager":
        pages.append("/devices/demo-r1/lost")
    sign_in(page, api_server, account(demo[0], role), pages[0])
    for path in pages:
        page.goto(api_server + path)
        assert page.url.endswith(path), (path, page.url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} scrolls sideways on a phone ({width}px)"
        name = path.strip("/").replace("/", "-")
        page.screenshot(path=str(tmp_path / f"console-360-{role}-{name}.png"), full_page=True)
    page.goto(api_server + "/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
