"""NTAG 424 DNA tags personalised with `telegest badge write --ntag424` through the PN532
simulator, then read as a phone reads them, and every read through ingest and matching: a
genuine read accepted, a replayed one, a skipped counter, a forged MAC, another tag's MAC."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from fleet import sun
from fleet.db import make_engine, migrate, session_factory
from fleet.ingest import handle_clock
from fleet.matching import match_pending
from fleet.models import Anomaly, AuditLog, Badge, ClockEvent, VisitRecord
from tools.cli import main
from tools.field.ntag424 import Ntag424Error, Ntag424Link, personalise, read_url
from tools.sim.ntag424 import Ntag424

from .conftest import NOW, TS, clock, make_agency, read_event

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(120)]
UID = bytes.fromhex("04A1B2C3D4E5F6")
UID2 = bytes.fromhex("04A1B2C3D4E5F7")
BASE = "https://tg.example/s"


@pytest.fixture
def db(database_url):
    migrate(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as s:
        agency = make_agency(s)
        yield database_url, s, agency
    engine.dispose()


def write(pn532_sim, db_url: str, *args: str) -> tuple[int, dict | str]:
    """`telegest badge write --ntag424` on the simulator: (exit code, JSON or stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["badge", "write", pn532_sim.url, "--ntag424", "--db", db_url,
                     "--url", BASE, "--by", "tech", "--timeout", "2", *args])
    return code, (json.loads(out.getvalue()) if code == 0 else err.getvalue())


def phone_reads(tag: Ntag424) -> str:
    """What the phone gets on a tap: the tag enters the field, its NDEF URL is read."""
    tag.activate()
    return read_url(Ntag424Link(tag.apdu))


def send(s, device: str, *events: dict) -> None:
    handle_clock(s, device, clock(*events), NOW)
    s.commit()
    match_pending(s)
    s.commit()


def kinds(s) -> list[tuple[str, str]]:
    return [(a.kind, a.detail) for a in s.scalars(select(Anomaly).order_by(Anomaly.id))]


@pytest.fixture
def client_tag(db, pn532_sim):
    url, s, agency = db
    tag = Ntag424(UID)
    pn532_sim.place_ntag424(tag)
    code, out = write(pn532_sim, url, "--client-id", str(agency["client"].id))
    assert code == 0, out
    s.expire_all()
    return tag, out


def test_personalisation_registers_the_tag_and_locks_it(db, client_tag, pn532_sim):
    url, s, agency = db
    tag, out = client_tag
    badge = s.get(Badge, out["badge"])
    assert out["uid"] == "04A1B2C3D4E5F6" and out["kind"] == "client_tag"
    assert out["url"].startswith(f"{BASE}?c={agency['client'].id}&picc_data=")
    assert (badge.sun_uid, badge.sun_counter, badge.client_id) == (
        "04A1B2C3D4E5F6", out["counter"], agency["client"].id)
    keys = sun.tag_keys(agency["org"].sun_master_key, UID)
    assert tag.keys[:3] == [keys.app, keys.file, keys.meta]  # the factory keys are gone
    ndef = tag.files[2]
    assert ndef.sdm is not None and (ndef.read, ndef.write, ndef.change) == (0xE, 0, 0)
    assert sun.verify_url(out["url"], keys.meta.hex(), keys.file.hex()).valid
    code, err = write(pn532_sim, url, "--client-id", str(agency["client"].id))
    assert code == 2 and "already registered" in err and tag.sdm_ctr == out["counter"]
    audit = [(a.action, a.target) for a in s.scalars(select(AuditLog))]
    assert ("keys", "ntag424:04A1B2C3D4E5F6") in audit and ("create", f"badge:{badge.id}") in audit
    assert agency["org"].sun_master_key not in json.dumps(out)
    # nobody else can take the tag over: the factory key no longer opens it
    link = Ntag424Link(tag.apdu)
    link.select_ndef()
    with pytest.raises(Ntag424Error, match="authentication error"):
        link.authenticate(0, bytes(16))


def test_each_read_gives_a_new_url_with_the_next_counter(client_tag, db):
    _, s, agency = db
    tag, out = client_tag
    keys = sun.tag_keys(agency["org"].sun_master_key, UID)
    urls = [phone_reads(tag) for _ in range(3)]
    got = [sun.verify_url(u, keys.meta.hex(), keys.file.hex()) for u in urls]
    assert [g.counter for g in got] == [out["counter"] + 1, out["counter"] + 2,
                                        out["counter"] + 3]
    assert all(g.valid and g.uid == "04A1B2C3D4E5F6" for g in got) and len(set(urls)) == 3


def test_genuine_read_then_the_same_read_replayed(client_tag, db):
    _, s, agency = db
    tag, _ = client_tag
    url = phone_reads(tag)
    send(s, "p1", read_event(1, url))
    ev = s.scalars(select(ClockEvent)).one()
    assert (ev.match_status, ev.visit_id, ev.tag_proof) == ("matched", agency["visit"].id, "sun")
    assert kinds(s) == []
    # the URL copied (a photo of the phone's screen, a browser history) and sent again later
    send(s, "p1", read_event(2, url, "out", TS + 1800))
    (kind, detail), = kinds(s)
    assert kind == "replayed_tag" and "the same read as the last accepted" in detail
    second = s.scalars(select(ClockEvent).where(ClockEvent.seq == 2)).one()
    assert second.match_status == "anomaly" and second.visit_id is None
    rec = s.scalars(select(VisitRecord)).one()
    assert rec.actual_end is None  # the replay closed nothing
    # the next genuine read still works
    send(s, "p1", read_event(3, phone_reads(tag), "out", TS + 3600))
    assert s.scalars(select(VisitRecord)).one().actual_end is not None


def test_an_older_read_sent_after_a_newer_one_is_a_replay(client_tag, db):
    _, s, _ = db
    tag, _ = client_tag
    kept, newer = phone_reads(tag), phone_reads(tag)
    send(s, "p1", read_event(1, newer))
    send(s, "p1", read_event(2, kept, "out", TS + 1800))
    (kind, detail), = kinds(s)
    assert kind == "replayed_tag" and "older than the last accepted" in detail


def test_reads_kept_aside_make_the_counter_skip(client_tag, db):
    _, s, agency = db
    tag, out = client_tag
    for _ in range(4):  # read and kept, never sent
        phone_reads(tag)
    send(s, "p1", read_event(1, phone_reads(tag)))
    (kind, detail), = kinds(s)
    assert kind == "tag_counter_skip" and "4 reads never reached the fleet" in detail
    ev = s.scalars(select(ClockEvent)).one()
    assert ev.match_status == "matched" and ev.tag_proof == "sun"  # genuine, flagged
    assert s.scalar(select(Badge.sun_counter)) == out["counter"] + 5


def test_up_to_two_lost_reads_are_not_flagged(client_tag, db):
    _, s, _ = db
    tag, _ = client_tag
    phone_reads(tag), phone_reads(tag)
    send(s, "p1", read_event(1, phone_reads(tag)))
    assert kinds(s) == []


def test_a_forged_mac_is_flagged(client_tag, db):
    _, s, _ = db
    tag, _ = client_tag
    url = phone_reads(tag)
    mac = url[-16:]
    forged = url[:-16] + ("0" if mac[0] != "0" else "1") + mac[1:]
    send(s, "p1", read_event(1, forged))
    (kind, detail), = kinds(s)
    assert kind == "forged_tag" and "cmac does not match" in detail
    assert s.scalars(select(ClockEvent)).one().match_status == "anomaly"
    # the forgery did not move the counter: the genuine read is accepted
    send(s, "p1", read_event(2, url, ts=TS + 60))
    assert [k for k, _ in kinds(s)] == ["forged_tag"]


def test_another_tags_mac_or_data_is_flagged(db, client_tag, pn532_sim):
    url_db, s, agency = db
    tag, _ = client_tag
    other = Ntag424(UID2)  # a second tag, registered for another client
    pn532_sim.place_ntag424(other)
    assert write(pn532_sim, url_db, "--client-id", str(agency["other"].id))[0] == 0
    s.expire_all()
    mine, theirs = phone_reads(tag), phone_reads(other)
    mixed = mine[:-16] + theirs[-16:]  # this tag's picc_data, the other's cmac
    send(s, "p1", read_event(1, mixed))
    # the other tag's read relabelled as this client's
    relabelled = theirs.replace(f"c={agency['other'].id}", f"c={agency['client'].id}")
    send(s, "p1", read_event(2, relabelled, ts=TS + 60))
    (k1, d1), (k2, d2) = kinds(s)
    assert k1 == "forged_tag" and "cmac does not match" in d1
    assert k2 == "forged_tag" and "not the read of any NTAG 424 registered for client" in d2


@pytest.mark.parametrize("url,kind,words", [
    (f"{BASE}?c=1&picc_data=ABCD&cmac=0011223344556677", "forged_tag", "4 hex digits, not 32"),
    (f"{BASE}?c=1&picc_data={'X' * 32}&cmac=0011223344556677", "forged_tag", "not hexadecimal"),
    (f"{BASE}?c=999&picc_data={'A' * 32}&cmac={'0' * 16}", "unknown_badge",
     "no NTAG 424 registered for client 999"),
    (f"{BASE}?picc_data={'A' * 32}&cmac={'0' * 16}", "unknown_badge", "without a c= or g="),
])
def test_bad_sun_urls_are_flagged_with_a_reason(client_tag, db, url, kind, words):
    _, s, _ = db
    send(s, "p1", read_event(1, url))
    (k, detail), = kinds(s)
    assert k == kind and words in detail
    assert s.scalars(select(ClockEvent)).one().match_status == "anomaly"  # stored, acked


def test_a_sun_url_over_255_characters_is_a_bad_event(db):
    _, s, _ = db
    url = f"{BASE}?c=1&picc_data={'A' * 32}&cmac={'0' * 16}&pad={'x' * 200}"
    r = handle_clock(s, "p1", clock(read_event(1, url)), NOW)
    s.commit()
    assert r.refused is None and r.stored == 0 and r.rejected[0]["reason"] == "bad_event"
    assert s.scalar(select(ClockEvent.id)) is None


def test_static_tags_still_match_as_the_weaker_proof(db):
    from fleet.badges import issue

    _, s, agency = db
    token = issue(s, "test", agency["client"]).uid
    s.commit()
    send(s, "p1", {**read_event(1, token), "method": "qr"})
    ev = s.scalars(select(ClockEvent)).one()
    assert (ev.match_status, ev.tag_proof) == ("matched", "static")


def test_a_caregiver_card_as_ntag424_on_a_reader_box(db, pn532_sim):
    url_db, s, agency = db
    card = Ntag424(UID2)
    pn532_sim.place_ntag424(card)
    code, out = write(pn532_sim, url_db, "--caregiver-id", str(agency["alice"].id))
    assert code == 0 and out["kind"] == "caregiver_card"
    assert out["url"].startswith(f"{BASE}?g={agency['alice'].id}&")
    s.expire_all()
    url = phone_reads(card)
    send(s, "r1", {**read_event(1, url), "badge": "04A1B2C3D4E5F7"})
    ev = s.scalars(select(ClockEvent)).one()
    assert (ev.match_status, ev.visit_id, ev.tag_proof) == ("matched", agency["visit"].id, "sun")
    send(s, "r1", {**read_event(2, url, "out", TS + 1800), "badge": "04A1B2C3D4E5F7"})
    assert [k for k, _ in kinds(s)] == ["replayed_tag"]


def test_write_refusals_are_one_line(db, pn532_sim):
    url_db, s, agency = db
    pn532_sim.place_ntag424(Ntag424(UID))
    code, err = write(pn532_sim, url_db)
    assert code == 2 and "give --client-id" in err and err.count("\n") == 1
    code, err = write(pn532_sim, url_db, "--client-id", "999")
    assert code == 2 and "owner does not exist" in err
    # someone else's NTAG 424 (key 0 changed by its owner): refused, nothing registered
    foreign = Ntag424(UID, keys=[bytes(range(16))] + [bytes(16)] * 4)
    pn532_sim.place_ntag424(foreign)
    code, err = write(pn532_sim, url_db, "--client-id", str(agency["client"].id))
    assert code == 2 and "not a blank NTAG 424 DNA" in err
    assert s.scalar(select(Badge.id).where(Badge.sun_uid.is_not(None))) is None
    # an NTAG213 is no NTAG 424
    pn532_sim.place_tag(UID)
    code, err = write(pn532_sim, url_db, "--client-id", str(agency["client"].id))
    assert code == 2 and "does not answer as an NTAG 424 DNA" in err


def test_a_personalisation_cut_short_is_run_again(db, pn532_sim):
    """Keys 1 and 2 changed, then the tag moved: the next run opens it with the derived key 0
    it would have had, or with the factory key it still has."""
    url_db, s, agency = db
    tag = Ntag424(UID)
    keys = sun.tag_keys(agency["org"].sun_master_key, UID)
    link = Ntag424Link(tag.apdu)
    link.select_ndef()
    link.authenticate(0, bytes(16))
    link.change_key(1, keys.file, bytes(16))
    link.change_key(2, keys.meta, bytes(16))
    link.change_key(0, keys.app, bytes(16))  # then the tag was taken away
    pn532_sim.place_ntag424(tag)
    code, out = write(pn532_sim, url_db, "--client-id", str(agency["client"].id))
    assert code == 0, out
    assert sun.verify_url(phone_reads(tag), keys.meta.hex(), keys.file.hex()).valid


def test_personalise_against_the_simulator_directly():
    keys = sun.tag_keys("ab" * 32, UID)
    tag = Ntag424(UID)
    done = personalise(Ntag424Link(tag.apdu), UID, keys, sun.template(BASE, "client", 4))
    assert done.counter == 1 and done.uid == "04A1B2C3D4E5F6"


@pytest.mark.postgres
def test_genuine_replayed_and_skipped_reads_on_postgres(pg_database_url, pn532_sim):
    """The same checks on PostgreSQL, where matching locks the tags it updates."""
    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    try:
        with session_factory(engine)() as s:
            agency = make_agency(s)
            tag = Ntag424(UID)
            pn532_sim.place_ntag424(tag)
            code, out = write(pn532_sim, pg_database_url, "--client-id",
                              str(agency["client"].id))
            assert code == 0, out
            first = phone_reads(tag)
            for _ in range(4):
                phone_reads(tag)
            send(s, "p1", read_event(1, first), read_event(2, phone_reads(tag), "out",
                                                           TS + 3000))
            send(s, "p1", read_event(3, first, "out", TS + 3300))
            assert [k for k, _ in kinds(s)] == ["tag_counter_skip", "replayed_tag"]
            assert s.scalar(select(VisitRecord.status)) == "done"
            assert s.scalar(select(Badge.sun_counter)) == out["counter"] + 6
    finally:
        engine.dispose()


def test_the_api_shows_the_proof_and_the_tag(client_tag, db):
    from fastapi.testclient import TestClient

    from fleet.api.app import create_app
    from fleet.config import Settings
    from fleet.keys import create_api_key

    url_db, s, _ = db
    tag, out = client_tag
    send(s, "p1", read_event(1, phone_reads(tag)))
    key = create_api_key(s, "admin", "sun test")
    s.commit()
    with TestClient(create_app(Settings(database_url=url_db))) as api:
        api.headers["Authorization"] = f"Bearer {key}"
        ev, = api.get("/api/v1/clock-events").json()["items"]
        badge = api.get(f"/api/v1/badges/{out['badge']}").json()
    assert ev["tag_proof"] == "sun" and ev["match_status"] == "matched"
    assert (badge["sun_uid"], badge["sun_counter"]) == ("04A1B2C3D4E5F6", out["counter"] + 1)


def test_a_sun_badge_is_not_replaced_by_a_static_token(client_tag, db):
    from fleet.badges import BadgeError, replace

    _, s, _ = db
    _, out = client_tag
    with pytest.raises(BadgeError, match="NTAG 424 DNA: revoke it and personalise"):
        replace(s, "test", s.get(Badge, out["badge"]), "lost")
    s.rollback()
    assert s.get(Badge, out["badge"]).active


def test_the_same_sun_tag_twice_within_10_s_is_a_double_tap(client_tag, db):
    """Each read of an NTAG 424 DNA gives a new URL: the double tap is told by the tag, not by
    the URL's text (mutation survivor, #14 item 12)."""
    _, s, agency = db
    tag, _ = client_tag
    send(s, "p1", read_event(1, phone_reads(tag)), read_event(2, phone_reads(tag), ts=TS + 5))
    assert [k for k, _ in kinds(s)] == ["double_tap"]
    first, second = s.scalars(select(ClockEvent).order_by(ClockEvent.seq)).all()
    assert (first.match_status, second.match_status) == ("matched", "ignored")


def test_a_revoked_sun_tag_is_named_a_tag(client_tag, db):
    from fleet.badges import revoke

    _, s, _ = db
    tag, out = client_tag
    revoke(s, "test", s.get(Badge, out["badge"]), "stolen")
    s.commit()
    send(s, "p1", read_event(1, phone_reads(tag)))
    (kind, detail), = kinds(s)
    assert kind == "revoked_badge"
    assert detail.startswith(f"tag 04A1B2C3D4E5F6 (badge {out['badge']}) revoked on")
    assert s.scalar(select(ClockEvent.tag_proof)) is None  # refused: no proof recorded


def test_a_client_tag_read_by_a_reader_box_needs_a_caregiver_card(client_tag, db):
    _, s, _ = db
    tag, _ = client_tag
    send(s, "r1", read_event(1, phone_reads(tag)))
    (kind, detail), = kinds(s)
    assert kind == "unknown_badge" and "is a client tag, read by a reader box" in detail
    assert s.scalar(select(ClockEvent.match_status)) == "anomaly"
