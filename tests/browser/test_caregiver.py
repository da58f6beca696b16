"""The caregiver app in a real chromium at 360 px: enrolment by token, today's planning,
clock-in by a simulated NFC read, clock-out offline and the sync when the network is back,
a manual clock-in with its reason, the planning-change alert, a lost phone wiped at its next
contact. The API runs as a real uvicorn process; no broker, no worker: the gateway stores
and matches by itself."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import wait_until

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}
# Web NFC exists only on Android Chrome: a stand-in NDEFReader that the test makes "read" a
# tag, with the client's token in an NDEF Text record as `telegest badge write` writes it
FAKE_NFC = """
window.TG_POLL_MS = 1000;
window.NDEFReader = class extends EventTarget {
  async scan() { (window.__readers = window.__readers || []).push(this); }
};
window.__tap = (token) => {
  const ev = new Event("reading");
  ev.serialNumber = "04:a1:b2:c3:d4:e5:f6";
  const data = new TextEncoder().encode(token);
  ev.message = { records: [{ recordType: "text", encoding: "utf-8", lang: "fr",
                             data: new DataView(data.buffer) }] };
  (window.__readers || []).forEach((r) => r.dispatchEvent(ev));
  return (window.__readers || []).length;
};
"""
# the one-time position explanation (test_caregiver_geo.py) answered "no" beforehand, so the
# other tests clock without it
GEO_DECLINED = ('try { if (!localStorage.getItem("tg-geo")) localStorage.setItem("tg-geo", "no"); }'
                ' catch (e) {}')  # an opaque-origin document has no localStorage


def manager_key(db_url: str) -> str:
    from fleet.db import make_engine, session_factory
    from fleet.keys import create_api_key

    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        key = create_api_key(s, "admin", "caregiver app test")
        s.commit()
    engine.dispose()
    return key


class Setup:
    """A phone for Alice Martin, its one-time enrolment token, and her visit at Mme Durand's
    that started five minutes ago."""

    def __init__(self, base: str, db_url: str, ident: str = "phone-alice") -> None:
        self.db_url, self.ident = db_url, ident
        self.api = httpx.Client(base_url=base + "/api/v1", timeout=10, headers={
            "Authorization": f"Bearer {manager_key(db_url)}"})
        people = self.api.get("/caregivers", params={"limit": 100}).json()["items"]
        self.caregiver_id = next(p["id"] for p in people if p["name"] == "Alice Martin")
        clients = self.api.get("/clients", params={"limit": 100}).json()["items"]
        self.client_id = next(c["id"] for c in clients if c["name"] == "Mme Jeanne Durand")
        self.tag = self.api.get("/badges", params={"client_id": self.client_id}).json()[
            "items"][0]["uid"]
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        self.start = now - timedelta(minutes=5)
        r = self.api.post("/visits", json={
            "client_id": self.client_id, "caregiver_id": self.caregiver_id,
            "planned_start": self.start.isoformat(),
            "planned_end": (self.start + timedelta(hours=1)).isoformat()})
        assert r.status_code == 201, r.text
        self.visit_id = r.json()["id"]
        r = self.api.post("/devices", json={"ident": ident, "kind": "phone",
                                            "caregiver_id": self.caregiver_id})
        assert r.status_code == 201, r.text
        self.token = self.api.post(f"/devices/{ident}/enrolment").json()["token"]

    def events(self) -> list[dict]:
        return self.api.get("/clock-events", params={"device": self.ident}).json()["items"]

    def record(self) -> dict | None:
        items = self.api.get("/visit-records", params={"caregiver_id": self.caregiver_id,
                                                       "limit": 1000}).json()["items"]
        return next((r for r in items if r["visit_id"] == self.visit_id), None)


@pytest.fixture
def setup(api_server, demo):
    s = Setup(api_server, demo[0])
    yield s
    s.api.close()


def open_app(browser, base: str, token: str):
    context = browser.new_context(**PHONE)
    context.add_init_script(FAKE_NFC + GEO_DECLINED)
    page = context.new_page()
    page.goto(f"{base}/app/enrol?token={token}")
    return context, page


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page scrolls sideways on a phone ({width}px)"


def test_nfc_clock_in_then_offline_clock_out_reaches_the_fleet(browser, api_server, setup,
                                                                tmp_path):
    context, page = open_app(browser, api_server, setup.token)
    card = page.locator(f'[data-visit="{setup.visit_id}"]')
    card.wait_for(timeout=15_000)
    assert "Mme Jeanne Durand" in card.inner_text()
    assert "?token" not in page.url, "the one-time token leaves the address bar"
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-today.png"))

    card.click()
    page.click("#nfc-start")
    page.wait_for_selector("#nfc-on")
    assert page.evaluate(f"window.__tap({setup.tag!r})") == 1
    page.wait_for_selector("#current:not([hidden])")
    assert "Mme Jeanne Durand" in page.inner_text("#current")
    wait_until(lambda: len(setup.events()) == 1, 15, what="the clock-in stored")
    first = setup.events()[0]
    assert (first["seq"], first["dir"], first["method"], first["tag"]) == (
        1, "in", "nfc", setup.tag)
    wait_until(lambda: (setup.record() or {}).get("status") == "in_progress", 15,
               what="the visit started on the manager's side")

    page.fill("#km", "12")
    page.fill("#expenses", "4.50")
    page.fill("#comment", "Parking payant")
    page.click("#save-notes")
    page.goto(f"{api_server}/app/#/week")  # "visit in progress" shows on every screen
    page.wait_for_selector("#current:not([hidden])")
    page.goto(f"{api_server}/app/#/visit/{setup.visit_id}")
    page.wait_for_selector("#nfc-start, #nfc-on")
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-visit.png"))

    context.set_offline(True)
    page.wait_for_selector('#net[data-state="offline"]')
    if page.locator("#nfc-start").count():
        page.click("#nfc-start")
    page.wait_for_selector("#nfc-on")
    page.evaluate(f"window.__tap({setup.tag!r})")
    page.wait_for_selector('#net[data-queue="1"]')
    page.wait_for_selector("#current", state="hidden")
    page.fill("#report", "Repas pris, RAS.")
    page.click("#save-notes")
    time.sleep(2)  # two polls while offline: nothing can leave the phone
    assert len(setup.events()) == 1
    page.screenshot(path=str(tmp_path / "caregiver-offline.png"))

    context.set_offline(False)
    page.wait_for_selector('#net[data-queue="0"]', timeout=15_000)
    wait_until(lambda: len(setup.events()) == 2, 15, what="the clock-out stored")
    out = setup.events()[1]
    assert (out["seq"], out["dir"], out["method"]) == (2, "out", "nfc")
    wait_until(lambda: (setup.record() or {}).get("status") == "done", 15,
               what="the visit completed on the manager's side")
    engine = sa.create_engine(setup.db_url)
    try:
        def report():
            with engine.connect() as c:
                return c.execute(sa.text("SELECT km, expenses_cents, report FROM "
                                         "visit_records WHERE visit_id = :v"),
                                 {"v": setup.visit_id}).one()
        wait_until(lambda: "Repas" in (report()[2] or ""), 15, what="the end-of-visit report")
        assert report() == (12, 450, "Repas pris, RAS.\n\nComments: Parking payant")
    finally:
        engine.dispose()

    # the visit is closed: a second tap does not reopen it, and says why in both languages
    page.goto(f"{api_server}/app/#/clock")
    if page.locator("#nfc-start").count():
        page.click("#nfc-start")
    page.wait_for_selector("#nfc-on")
    page.evaluate(f"window.__tap({setup.tag!r})")
    # the toast of the offline save ("Enregistré (envoi au retour du réseau)") may still show
    # for a few of its 6 seconds: wait for the tap's own answer, not for any toast
    page.locator("#toast:not([hidden])", has_text="already closed").wait_for(timeout=10_000)
    assert "déjà terminée" in page.inner_text("#toast")
    time.sleep(1)
    assert len(setup.events()) == 2, "nothing recorded for a closed visit"
    context.close()

    # and the manager's board shows the completed visit
    board = browser.new_page()
    board.goto(f"{api_server}/board")
    board.click("#key-login summary, details summary")
    board.fill("#key", manager_key(setup.db_url))
    board.click("#key-login button[type=submit]")
    board.wait_for_url(f"{api_server}/board*")
    row = board.locator(f'tr[data-visit="{setup.visit_id}"]')
    assert row.count() == 1 and "done" in row.get_attribute("class")
    board.close()


def test_manual_clock_in_with_a_reason(browser, api_server, setup, tmp_path):
    context, page = open_app(browser, api_server, setup.token)
    page.locator(f'[data-visit="{setup.visit_id}"]').click(timeout=15_000)
    page.click("#manual")
    page.select_option("#reason-kind", "")
    page.fill("#reason", "badge arraché")
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-manual.png"))
    page.click("#manual-ok")
    page.wait_for_selector("#current:not([hidden])")
    wait_until(lambda: len(setup.events()) == 1, 15, what="the manual clock-in stored")
    ev = setup.events()[0]
    # a claim names its visit, not a tag: the phone holds no tag tokens (issue #11)
    assert (ev["method"], ev["dir"], ev["reason"], ev["tag"], ev["proof_level"]) == (
        "manual", "in", "badge arraché", None, None if ev["match_status"] == "pending"
        else "manual")
    wait_until(lambda: (setup.record() or {}).get("status") == "in_progress", 15,
               what="the manual clock-in matched to the visit")
    context.close()


def test_planning_change_raises_an_alert(browser, api_server, setup, tmp_path):
    context, page = open_app(browser, api_server, setup.token)
    page.locator(f'[data-visit="{setup.visit_id}"]').wait_for(timeout=15_000)
    assert page.locator("#alert").is_hidden()
    later = setup.start + timedelta(minutes=30)
    r = setup.api.patch(f"/visits/{setup.visit_id}", json={
        "planned_start": later.isoformat(),
        "planned_end": (later + timedelta(hours=1)).isoformat()})
    assert r.status_code == 200, r.text
    page.wait_for_selector("#alert:not([hidden])", timeout=15_000)
    assert "Votre planning a changé" in page.inner_text("#alert")
    assert "Mme Jeanne Durand" in page.inner_text("#alert")
    assert page.evaluate("document.body.dataset.alerts") == "1"
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-alert.png"))
    page.click("#alert-ok")
    assert page.locator("#alert").is_hidden()
    time.sleep(2.5)  # later polls: unchanged planning (304), no new alert
    assert page.evaluate("document.body.dataset.alerts") == "1"
    context.close()


def test_a_lost_phone_is_wiped_at_its_next_contact(browser, api_server, setup, tmp_path):
    from fleet.brokerauth import NoBrokerAuth
    from fleet.db import make_engine, session_factory
    from fleet.lifecycle import Actor, block

    context, page = open_app(browser, api_server, setup.token)
    page.locator(f'[data-visit="{setup.visit_id}"]').wait_for(timeout=15_000)
    assert page.evaluate("indexedDB.databases().then(d => d.map(x => x.name))") == [
        "telegest"]
    engine = make_engine(setup.db_url)
    with session_factory(engine)() as s:
        block(s, setup.ident, Actor("test:manager", "manager"), NoBrokerAuth(),
              "declared lost by the caregiver")
        s.commit()
    engine.dispose()
    page.wait_for_selector("#blocked", timeout=15_000)
    assert page.evaluate("localStorage.length") == 0
    wait_until(lambda: page.evaluate(
        "indexedDB.databases().then(d => d.map(x => x.name))") == [], 10,
        what="the phone's database erased")
    assert page.evaluate("caches.keys()") == []
    assert "Mme Jeanne Durand" not in page.content()
    page.screenshot(path=str(tmp_path / "caregiver-blocked.png"))
    cmds = setup.api.get(f"/devices/{setup.ident}/commands").json()["items"]
    assert cmds[0]["kind"] == "wipe" and cmds[0]["state"] == "sent"
    page.goto(f"{api_server}/app/")
    page.wait_for_selector("#token")  # back to enrolment: nothing of the old identity is left
    context.close()


def test_the_shell_and_planning_open_offline(browser, api_server, setup):
    context, page = open_app(browser, api_server, setup.token)
    page.locator(f'[data-visit="{setup.visit_id}"]').wait_for(timeout=15_000)
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15_000)
    context.set_offline(True)
    page.reload()
    page.locator(f'[data-visit="{setup.visit_id}"]').wait_for(timeout=15_000)
    assert page.get_attribute("#net", "data-state") == "offline"
    context.close()


def test_manifest_makes_it_installable(api_server, demo):
    r = httpx.get(api_server + "/app/manifest.webmanifest")
    assert r.headers["content-type"].startswith("application/manifest+json")
    doc = r.json()
    assert doc["start_url"] == "/app/" and doc["display"] == "standalone"
    assert {"192x192", "512x512"} <= {i["sizes"] for i in doc["icons"]}
    for icon in doc["icons"]:
        assert httpx.get(api_server + icon["src"]).status_code == 200
    sw = httpx.get(api_server + "/app/sw.js")
    assert sw.headers["content-type"].startswith("text/javascript")
    assert '"/app/static/app.js"' in sw.text


def test_an_older_render_never_writes_over_a_newer_screen(browser, api_server, setup):
    """render() waits for the phone's database before writing the screen: a render that
    started earlier and finishes later (here the visit screen, slowed down) must not replace
    the screen the caregiver went to since (the week)."""
    context, page = open_app(browser, api_server, setup.token)
    page.locator(f'[data-visit="{setup.visit_id}"]').wait_for(timeout=15_000)
    page.evaluate("""(id) => {
      const visit = viewVisit;
      viewVisit = async (v) => { await new Promise((r) => setTimeout(r, 600)); return visit(v); };
      location.hash = "#/visit/" + id;
      setTimeout(() => { location.hash = "#/week"; }, 100);
    }""", setup.visit_id)
    screen = lambda: page.evaluate("document.querySelector('#view').dataset.screen")  # noqa
    wait_until(lambda: screen() == "week/", 10, what="the week on screen")
    page.wait_for_timeout(1200)  # the slow render of the visit has finished by now
    assert screen() == "week/"
    assert page.locator("#nfc-start, #nfc-on").count() == 0, "the visit screen came back"
    context.close()
