"""A coordinator's week in a real browser: a weekday series made with the form, one occurrence
cancelled, then a week of one caregiver reassigned to another (the conflict shown and
confirmed first). Screenshots go to the test's tmp folder (console-series-form.png,
console-series.png, console-week-conflict.png, console-week.png); docs/screenshots/ gets
copies made by hand."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from tests.browser.test_console import account, query, sign_in
from tests.browser.test_office import TZ, sqlite_time

pytestmark = pytest.mark.browser


def next_monday() -> date:
    today = datetime.now(TZ).date()
    return today + timedelta(days=7 - today.weekday())


def ids(db_url: str, name: str) -> int:
    return query(db_url, "SELECT id FROM caregivers WHERE name = :n", n=name)[0][0]


def test_weekday_series_cancel_one_and_reassign_a_week(browser, demo, api_server, tmp_path):
    db_url = demo[0]
    monday = next_monday()
    week2 = monday + timedelta(days=7)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, api_server, account(db_url, "manager"), "/planning/series/new")

    # a visit every weekday at 08:00 for Mme Jeanne Durand with Alice Martin
    page.select_option("#client_id", label="Mme Jeanne Durand")
    page.select_option("#caregiver_id", label="Alice Martin")
    for day in ("MO", "TU", "WE", "TH", "FR"):
        assert page.locator(f"#days input[value={day}]").is_checked()
    page.fill("#starts_on", monday.isoformat())
    page.fill("#at", "08:00")
    page.fill("#duration_min", "60")
    page.screenshot(path=str(tmp_path / "console-series-form.png"), full_page=True)
    page.click("#series-form button[type=submit]")
    page.wait_for_url(api_server + "/planning/series/*")
    assert "Created" in page.inner_text("[role=status]")
    series_id = int(page.url.split("/planning/series/")[1].split("?")[0])
    made = query(db_url, "SELECT series_day FROM visits WHERE series_id = :s ORDER BY "
                         "series_day", s=series_id)
    assert len(made) >= 30 and {date.fromisoformat(str(d)).weekday() for d, in made} == {
        0, 1, 2, 3, 4}
    assert page.locator("#series-visits tbody tr").count() == len(made)

    # cancel Wednesday's visit only
    wednesday = (monday + timedelta(days=2)).isoformat()
    page.click(f"#series-visits tr[data-day='{wednesday}'] button.cancel-one")
    page.wait_for_url(api_server + f"/planning/series/{series_id}?msg=*")
    assert page.inner_text(f"#series-visits tr[data-day='{wednesday}'] td:nth-child(4)") == \
        "cancelled"
    assert wednesday in page.inner_text("#series-facts")
    assert query(db_url, "SELECT status FROM visits WHERE series_id = :s AND status = "
                         "'cancelled'", s=series_id) == [("cancelled",)]
    page.screenshot(path=str(tmp_path / "console-series.png"))  # the first rows

    # Bruno is busy on the Tuesday of the second week at 08:30: one visit by the form
    bruno, alice = ids(db_url, "Bruno Leroy"), ids(db_url, "Alice Martin")
    tuesday2 = week2 + timedelta(days=1)
    page.goto(api_server + f"/planning/visits/new?day={tuesday2.isoformat()}")
    page.select_option("#client_id", label="M. Paul Petit")
    page.select_option("#caregiver_id", label="Bruno Leroy")
    page.fill("#start", "08:30")
    page.fill("#end", "09:30")
    page.click("#visit-form button[type=submit]")
    page.wait_for_url(api_server + "/planning?*")

    # Alice's second week, every visit ticked, given to Bruno: the conflict is shown first
    page.goto(api_server + f"/planning/week?day={week2.isoformat()}&caregiver_id={alice}")
    assert page.locator(".week-day").count() == 7
    boxes = page.locator("#week input[name=visit_id]")
    assert boxes.count() == 5
    for i in range(boxes.count()):
        boxes.nth(i).check()
    page.select_option("#to", label="Bruno Leroy")
    page.click("#reassign-button")
    assert "intervenant non disponible" in page.inner_text("[role=alert]")
    lo, hi = sqlite_time(datetime.combine(week2, datetime.min.time(), TZ)), sqlite_time(
        datetime.combine(week2 + timedelta(days=7), datetime.min.time(), TZ))
    week_of = ("SELECT caregiver_id, COUNT(*) FROM visits WHERE series_id = :s AND "
               "planned_start >= :lo AND planned_start < :hi GROUP BY caregiver_id")
    assert query(db_url, week_of, s=series_id, lo=lo, hi=hi) == [(alice, 5)], "unchanged"
    assert page.locator("#week input[name=visit_id]:checked").count() == 5, "ticks kept"
    page.screenshot(path=str(tmp_path / "console-week-conflict.png"), full_page=True)
    page.check("#confirm")
    page.click("#reassign-button")
    page.wait_for_url(api_server + f"/planning/week?day={week2.isoformat()}"
                                   f"&caregiver_id={bruno}&msg=saved")
    assert query(db_url, week_of, s=series_id, lo=lo, hi=hi) == [(bruno, 5)]
    assert page.locator(".week-visit").count() == 6
    assert page.locator(".week-visit.conflict").count() == 2  # Tuesday: both of Bruno's
    assert "chevauche" in page.inner_text(f"section[data-day='{tuesday2.isoformat()}']")
    page.screenshot(path=str(tmp_path / "console-week.png"), full_page=True)
    who = query(db_url, "SELECT who FROM audit_log WHERE action = 'reassign' AND target = :t",
                t=f"caregiver:{bruno}")
    assert who == [("user:manager@demo.example",)]


def test_the_week_and_series_pages_fit_a_360_pixel_phone(browser, demo, api_server, tmp_path):
    page = browser.new_page(viewport={"width": 360, "height": 740})
    sign_in(page, api_server, account(demo[0], "manager"), "/planning/series/new")
    page.select_option("#client_id", label="Mme Jeanne Durand")
    page.select_option("#caregiver_id", label="Alice Martin")
    page.fill("#starts_on", next_monday().isoformat())
    page.click("#series-form button[type=submit]")
    page.wait_for_url(api_server + "/planning/series/*")
    series = page.url.split("?")[0][len(api_server):]
    alice = ids(demo[0], "Alice Martin")
    for path in ("/planning/series/new", "/planning/series", series,
                 f"/planning/week?day={next_monday().isoformat()}&caregiver_id={alice}"):
        page.goto(api_server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} scrolls sideways on a phone ({width}px)"
    assert page.locator(".week-visit").count() == 5
    page.screenshot(path=str(tmp_path / "console-week-360.png"), full_page=True)
