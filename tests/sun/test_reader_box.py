"""A reader box with an NTAG 424 DNA caregiver card: the firmware's tap loop, over its PN532
driver and the PN532 simulator (HSU through pyserial), reads the card's SUN URL as ISO 14443-4
and journals it with the UID; the fleet verifies it. An NTAG21x card still taps by its UID."""
from __future__ import annotations

import json

import pytest
import serial
from sqlalchemy import select

from firmware.drivers.pn532 import PN532
from firmware.drivers.pn532_uart import PN532UART
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.feedback import Feedback
from firmware.runtime.taps import PN532Reader, TapLoop
from fleet import sun
from fleet.db import make_engine, migrate, session_factory
from fleet.ingest import handle_clock
from fleet.matching import match_pending
from fleet.models import Anomaly, ClockEvent, Organisation
from fleet.sun_tags import keys_for, register
from tools.field.ntag424 import Ntag424Link, personalise
from tools.sim.ntag424 import Ntag424
from tools.sim.pn532 import PN532Sim

from .conftest import NOW, TS, make_agency

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(60)]
CARD = bytes.fromhex("04C0FFEE123456")


class Clock:
    def time(self):
        return TS + 120

    def quality(self):
        return "synced"


class Led:
    def set(self, color, hz):
        pass


@pytest.fixture
def box(tmp_path):
    """The PN532 simulator on a socket, the firmware's driver, tap loop and reader core."""
    sim = PN532Sim()
    port = serial.serial_for_url(f"socket://127.0.0.1:{sim.serve_tcp()}", timeout=0)
    pn = PN532(PN532UART(port), timeout_ms=500, ack_timeout_ms=100, retries=2)
    cfg = {"version": 1, "tz": "Europe/Paris", "tolerance_min": 30,
           "badges": [CARD.hex().upper(), "04A1B2C3D4E5F6"],
           "visits": [[1, CARD.hex().upper(), TS, TS + 3600]]}
    core = ReaderCore("r1", Journal(str(tmp_path / "j")), Planning.from_config(cfg), Clock())
    loop = TapLoop(PN532Reader(pn), core, Feedback(Led()))
    yield sim, loop, core
    port.close()
    sim.close()


def test_a_sun_card_tapped_on_the_box_is_verified_by_the_fleet(box, database_url):
    sim, loop, core = box
    migrate(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as s:
        agency = make_agency(s)
        org = s.get(Organisation, agency["org"].id)
        card = Ntag424(CARD)
        keys = keys_for(s, "test", org, CARD.hex())
        done = personalise(Ntag424Link(card.apdu), CARD, keys,
                           sun.template("https://tg.example/s", "caregiver", agency["alice"].id))
        register(s, "test", agency["alice"], CARD.hex(), done.counter)
        s.commit()

        sim.place_ntag424(card)
        assert loop.poll(0) == "in"
        (_, payload), = core.journal.read_from(1, 5)
        ev = json.loads(payload)
        assert ev["badge"] == CARD.hex().upper() and "picc_data=" in ev["tag"]
        assert sun.verify_url(ev["tag"], keys.meta.hex(), keys.file.hex()).counter == \
            done.counter + 1

        handle_clock(s, "r1", json.dumps({"now": TS + 120, "events": [
            {"seq": 1, **ev}]}).encode(), NOW)
        s.commit()
        match_pending(s)
        s.commit()
        e = s.scalars(select(ClockEvent)).one()
        assert (e.match_status, e.visit_id, e.tag_proof) == ("matched", agency["visit"].id,
                                                             "sun")
        assert s.scalar(select(Anomaly.id)) is None
    engine.dispose()


def test_an_ntag21x_card_still_taps_by_its_uid(box):
    sim, loop, core = box
    sim.place_tag(bytes.fromhex("04A1B2C3D4E5F6"))
    assert loop.poll(0) == "unplanned_in"
    (_, payload), = core.journal.read_from(1, 5)
    assert "tag" not in json.loads(payload)


def test_a_sun_card_whose_read_fails_still_taps_by_its_uid(box):
    sim, loop, core = box
    sim.place_ntag424(Ntag424(CARD))  # blank: no NDEF message, no SUN URL
    assert loop.poll(0) == "in"
    (_, payload), = core.journal.read_from(1, 5)
    assert json.loads(payload)["badge"] == CARD.hex().upper() and "tag" not in \
        json.loads(payload)
