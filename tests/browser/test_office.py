"""The coordinator's month-end in a real browser, on the demo agency with its past two weeks
(fleet.demo_history): a forgotten departure corrected with COD from the visit's page, the
review list's one-click COD, a month validated and a correction then refused. Screenshots go
to the test's tmp folder (console-visit.png, console-review.png, console-validation.png);
docs/screenshots/ gets copies made by hand."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tests.browser.test_console import account, query, sign_in
from tools.up import seed

pytestmark = pytest.mark.browser
TZ = ZoneInfo("Europe/Paris")


@pytest.fixture
def demo(database_url):
    """The demo agency as `telegest up` makes it: today and the past two weeks."""
    return database_url, seed(database_url, history=True)


def forgotten_departures(db_url: str) -> list[tuple]:
    """(visit id, planned end, actual start) of the past visits still without a departure."""
    return query(db_url, """
        SELECT v.id, v.planned_end, r.actual_start FROM visits v
        JOIN visit_records r ON r.visit_id = v.id
        WHERE r.actual_start IS NOT NULL AND r.actual_end IS NULL
          AND r.correction_code IS NULL AND r.validated_at IS NULL
          AND v.planned_end < :now ORDER BY v.planned_start""",
                 now=sqlite_time(datetime.now(timezone.utc) - timedelta(hours=2)))


def sqlite_time(t: datetime) -> str:
    """A UTC time as fleet.types.UTCDateTime stores it on SQLite."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def local(t) -> datetime:
    t = datetime.fromisoformat(t) if isinstance(t, str) else t
    return t.replace(tzinfo=timezone.utc).astimezone(TZ) if t.tzinfo is None else t.astimezone(TZ)


def record(db_url: str, visit_id: int) -> tuple:
    return query(db_url, "SELECT retained_start, retained_end, correction_code, validated_at "
                         "FROM visit_records WHERE visit_id = :v", v=visit_id)[0]


def test_correct_a_forgotten_departure_with_cod_from_the_visit_page(
        browser, demo, api_server, tmp_path):
    db_url = demo[0]
    visit_id, planned_end, _ = forgotten_departures(db_url)[0]
    events_before = query(db_url, "SELECT id, device_ts FROM clock_events WHERE visit_id = :v "
                                  "ORDER BY id", v=visit_id)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(db_url, "manager"), "/board")
    page.goto(api_server + f"/visits/{visit_id}")
    assert page.locator("#code").input_value() == "COD", "the code is suggested"
    assert page.locator("#departure").input_value() == local(planned_end).strftime(
        "%Y-%m-%dT%H:%M"), "the departure offered is the planned end"
    assert "—" in page.inner_text("#actual"), "no departure was clocked"

    # departure before arrival: refused with its message, nothing changed
    arrival = page.locator("#arrival").input_value()
    page.fill("#departure", arrival[:11] + "00:01")
    page.fill("#why", "departure forgotten, checked with the caregiver")
    page.click("#correction-form button[type=submit]")
    assert "is not after arrival" in page.inner_text("[role=alert]")
    assert record(db_url, visit_id)[2] is None

    page.fill("#departure", local(planned_end).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#why", "departure forgotten, checked with the caregiver")
    page.click("#correction-form button[type=submit]")
    page.wait_for_url(api_server + f"/visits/{visit_id}?msg=*")
    assert "Correction saved" in page.inner_text("[role=status]")
    assert local(planned_end).strftime("%H:%M") in page.inner_text("#retained")
    assert page.inner_text("#retained-code") == "COD"
    history = page.inner_text("#corrections")
    assert "COD" in history and "manager@demo.example" in history
    assert "departure forgotten, checked with the caregiver" in history
    assert "correct" in page.inner_text("#visit-audit")
    page.screenshot(path=str(tmp_path / "console-visit.png"), full_page=True)

    retained_start, retained_end, code, _ = record(db_url, visit_id)
    assert code == "COD" and local(retained_end) == local(planned_end)
    assert query(db_url, "SELECT id, device_ts FROM clock_events WHERE visit_id = :v "
                         "ORDER BY id", v=visit_id) == events_before, "raw events untouched"
    who = query(db_url, "SELECT who, role FROM audit_log WHERE action = 'correct' AND "
                        "target = :t", t=f"visit:{visit_id}")
    assert who == [("user:manager@demo.example", "manager")]


def test_the_review_list_one_click_cod(browser, demo, api_server, tmp_path):
    db_url = demo[0]
    visit_id, planned_end, _ = forgotten_departures(db_url)[-1]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(db_url, "manager"), "/review")
    assert page.locator("#review tbody tr[data-kind]").count() > 3
    kinds = set(page.eval_on_selector_all("#review tbody tr[data-kind]",
                                          "rows => rows.map(r => r.dataset.kind)"))
    assert {"manual", "missing_departure", "late"} <= kinds, kinds
    page.screenshot(path=str(tmp_path / "console-review.png"), full_page=True)

    page.select_option("select[name=kind]", "missing_departure")
    page.click(".filters button[type=submit]")
    row = page.locator(f'#review tr[data-kind="missing_departure"][data-visit="{visit_id}"]')
    assert row.count() == 1
    row.locator("button", has_text="(COD)").click()  # the why is required first
    assert record(db_url, visit_id)[2] is None
    row.locator("input[name=why]").fill("she forgot to clock out, family confirms")
    row.locator("button", has_text="(COD)").click()
    page.wait_for_url("**/review?*msg=corrected*")
    assert "Correction saved" in page.inner_text("[role=status]")
    assert page.locator(f'#review tr[data-visit="{visit_id}"]').count() == 0
    assert page.locator("select[name=kind]").input_value() == "missing_departure"
    _, retained_end, code, _ = record(db_url, visit_id)
    assert code == "COD" and local(retained_end) == local(planned_end)


def test_validate_a_month_then_a_correction_is_refused(browser, demo, api_server, tmp_path):
    db_url = demo[0]
    month_start = (datetime.now(TZ) - timedelta(days=14)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0)
    month = month_start.strftime("%Y-%m")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(db_url, "manager"), "/validation")
    page.goto(api_server + f"/validation?month={month}")
    assert int(page.inner_text("#m-visits")) > 0
    assert "COD" in page.inner_text("#m-codes")
    page.click("#validate-month button[type=submit]")
    page.wait_for_url(f"**/validation?month={month}*")
    assert "Month validated" in page.inner_text("[role=status]")
    assert "validated" in page.inner_text("#m-state")
    assert page.inner_text("#m-validated") == page.inner_text("#m-visits")
    page.screenshot(path=str(tmp_path / "console-validation.png"), full_page=True)
    with page.expect_download() as got:
        page.click('#exports a[href*="esppadom"]')
    xml = (tmp_path / "delivery.xml")
    got.value.save_as(xml)
    assert b">COD<" in xml.read_bytes() and got.value.suggested_filename.endswith(".xml")

    visit_id, = query(db_url, """
        SELECT v.id FROM visits v JOIN visit_records r ON r.visit_id = v.id
        WHERE v.planned_start >= :lo AND r.actual_end IS NOT NULL ORDER BY v.planned_start
        LIMIT 1""", lo=sqlite_time(month_start))[0]
    before = record(db_url, visit_id)
    page.goto(api_server + f"/visits/{visit_id}")
    assert page.locator("#locked").count() == 1
    page.fill("#why", "trying after the month-end")
    page.click("#correction-form button[type=submit]")
    assert "is validated: reopen it" in page.inner_text("[role=alert]")
    assert record(db_url, visit_id) == before, "nothing changed"

    page.goto(api_server + f"/validation?month={month}")
    page.click("#reopen-month button[type=submit]")  # the why is required first
    assert "validated" in page.inner_text("#m-state")
    page.fill("#month-why", "a late sheet from a caregiver")
    page.click("#reopen-month button[type=submit]")
    page.wait_for_url(f"**/validation?month={month}*")
    assert "Month reopened" in page.inner_text("[role=status]")
    assert "a late sheet from a caregiver" in page.inner_text("#m-state")
    assert record(db_url, visit_id)[3] is None, "the visit is open again"


def test_office_pages_fit_a_360_pixel_phone(browser, demo, api_server):
    page = browser.new_page(viewport={"width": 360, "height": 740})
    visit_id = forgotten_departures(demo[0])[0][0]
    pages = ["/review", "/validation", f"/visits/{visit_id}"]
    sign_in(page, api_server, account(demo[0], "manager"), pages[0])
    for path in pages:
        page.goto(api_server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} scrolls sideways on a phone ({width}px)"
