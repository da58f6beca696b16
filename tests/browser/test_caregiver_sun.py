"""The caregiver app reading an NTAG 424 DNA (chromium at 360 px, Web NFC stood in): the tag's
SUN URL is sent whole, the home is recognised offline by its c= reference, the fleet verifies
the read and matches the visit; the same URL read again (a copy) is flagged `replayed_tag`."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from fleet import sun
from fleet.db import make_engine, session_factory
from fleet.models import Anomaly
from tests.browser.test_caregiver import (FAKE_NFC, GEO_DECLINED, PHONE, Setup,
                                         no_sideways_scroll)
from tests.helpers import wait_until
from tools.field.ntag424 import Ntag424Link, personalise, read_url
from tools.sim.ntag424 import Ntag424

pytestmark = pytest.mark.browser
UID = bytes.fromhex("04C0FFEE424242")
# a URI record, as Web NFC hands an NTAG 424's NDEF message to the page
TAP_URL = """
window.__tapUrl = (url) => {
  const ev = new Event("reading");
  ev.serialNumber = "04:c0:ff:ee:42:42:42";
  const data = new TextEncoder().encode(url);
  ev.message = { records: [{ recordType: "url", data: new DataView(data.buffer) }] };
  (window.__readers || []).forEach((r) => r.dispatchEvent(ev));
  return (window.__readers || []).length;
};
"""


@pytest.fixture
def setup(api_server, demo):
    s = Setup(api_server, demo[0])
    yield s
    s.api.close()


def sun_tag(setup: Setup) -> Ntag424:
    """An NTAG 424 DNA personalised for the visit's client and registered in the fleet."""
    from fleet.models import Client, Organisation
    from fleet.sun_tags import keys_for, register

    engine = make_engine(setup.db_url)
    tag = Ntag424(UID)
    with session_factory(engine)() as s:
        client = s.get(Client, setup.client_id)
        org = s.get(Organisation, client.organisation_id)
        keys = keys_for(s, "test", org, UID.hex())
        done = personalise(Ntag424Link(tag.apdu), UID, keys,
                           sun.template("https://tg.example/s", "client", client.id))
        register(s, "test", client, UID.hex(), done.counter)
        s.commit()
    engine.dispose()
    return tag


def phone_reads(tag: Ntag424) -> str:
    tag.activate()
    return read_url(Ntag424Link(tag.apdu))


def db_rows(db_url: str, stmt):
    engine = make_engine(db_url)
    try:
        with engine.connect() as c:
            return c.execute(stmt).all()
    finally:
        engine.dispose()


def test_a_sun_tag_read_by_the_phone_is_verified_and_a_copy_is_flagged(browser, api_server,
                                                                        setup, tmp_path):
    tag = sun_tag(setup)
    context = browser.new_context(**PHONE)
    context.add_init_script(FAKE_NFC + TAP_URL + GEO_DECLINED)
    page = context.new_page()
    page.goto(f"{api_server}/app/enrol?token={setup.token}")
    page.locator(f'[data-visit="{setup.visit_id}"]').click(timeout=15_000)
    page.click("#nfc-start")
    page.wait_for_selector("#nfc-on")

    url = phone_reads(tag)
    assert page.evaluate("(u) => window.__tapUrl(u)", url) == 1
    page.wait_for_selector("#current:not([hidden])")
    assert "Mme Jeanne Durand" in page.inner_text("#current")  # known offline by c=
    no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "caregiver-sun.png"))  # docs/screenshots: by hand
    wait_until(lambda: len(setup.events()) == 1, 15, what="the SUN clock-in stored")
    assert setup.events()[0]["tag"] == url
    wait_until(lambda: (setup.record() or {}).get("status") == "in_progress", 15,
               what="the visit started on a verified read")
    from fleet.models import ClockEvent

    assert db_rows(setup.db_url, sa.select(ClockEvent.tag_proof)) == [("sun",)]

    # the same URL again, as a copy would give it: stored, not matched, flagged
    assert page.evaluate("(u) => window.__tapUrl(u)", url) == 1
    wait_until(lambda: len(setup.events()) == 2, 15, what="the copied read stored")
    wait_until(lambda: db_rows(setup.db_url, sa.select(Anomaly.kind)) == [("replayed_tag",)],
               15, what="the copy flagged")
    assert (setup.record() or {}).get("status") == "in_progress"
    context.close()
