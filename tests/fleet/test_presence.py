"""Proof of presence (issue #11 items 2 and 3): distance to the home, the radius and the
position's accuracy, the learned reference point, each event's proof level, far_from_home,
and the manual clock-in that goes to review unless a position near the home backs it."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy import select

from fleet import agency_settings, presence
from fleet.ingest import handle_clock
from fleet.matching import match_pending
from fleet.models import Anomaly, Badge, ClockEvent, Device, Visit
from fleet.presence import Point
from fleet.review import review_items

from .conftest import NOW, TS, make_agency

HOME = Point(48.8566, 2.3522)
# about 5 km due north, and 30 m due east, of HOME
FAR = [HOME.lat + 5000 / 111_195, HOME.lon, 20]
NEAR = [HOME.lat, HOME.lon + 30 / (111_195 * math.cos(math.radians(HOME.lat))), 15]
TAG = "C12-7F3A"


# -- distance, radius, accuracy -----------------------------------------------------------------

def test_haversine_distance_of_known_points():
    # one degree of latitude is 111.195 km on the mean sphere; Paris to Lyon is about 392 km
    assert presence.distance_m(Point(0, 0), Point(1, 0)) == pytest.approx(111_195, rel=1e-4)
    assert presence.distance_m(Point(48.8566, 2.3522), Point(45.7640, 4.8357)) == \
        pytest.approx(392_000, rel=0.01)
    assert presence.distance_m(HOME, HOME) == 0


def test_near_far_and_unsure_take_the_accuracy_into_account():
    assert presence.where(NEAR, HOME, 200)[0] == "near"
    assert presence.where(FAR, HOME, 200)[0] == "far"
    # 300 m away, accurate to 50 m: far; accurate to 150 m: it may be at the door, no flag
    east = 300 / (111_195 * math.cos(math.radians(HOME.lat)))
    assert presence.where([HOME.lat, HOME.lon + east, 50], HOME, 200)[0] == "far"
    assert presence.where([HOME.lat, HOME.lon + east, 150], HOME, 200)[0] is None
    # 30 m away but accurate to 500 m only: not near either (it proves nothing)
    assert presence.where([NEAR[0], NEAR[1], 500], HOME, 200)[0] is None
    assert presence.where(None, HOME, 200) == (None, None)
    assert presence.where(NEAR, None, 200) == (None, None)


@pytest.mark.parametrize("tag_proof,kind,refused,nearness,level", [
    ("sun", "phone", False, None, "sun_verified"),
    ("sun", "phone", False, "far", "sun_verified"),
    ("static", "phone", False, "near", "static_tag_near"),
    ("static", "phone", False, None, "static_tag"),
    ("static", "phone", False, "far", "static_tag"),
    ("static", "reader", False, None, "static_tag_near"),
    (None, "phone", False, "near", "position"),
    (None, "phone", False, None, "manual"),
    (None, "phone", False, "far", "manual"),
    (None, "phone", True, "near", None),
])
def test_proof_level_of_each_case(tag_proof, kind, refused, nearness, level):
    assert presence.proof_level(tag_proof, kind, refused, nearness) == level


def test_learned_point_is_the_median_of_good_positions():
    good = [[HOME.lat + d, HOME.lon - d, 10] for d in (0.0001, -0.0001, 0.0)]
    stray = [HOME.lat + 1, HOME.lon + 1, 10]   # one reading kilometres off
    vague = [HOME.lat + 2, HOME.lon, 800]      # too inaccurate to learn from
    point = presence.learned_point([stray, vague, *good])
    assert presence.distance_m(point, HOME) < 20  # the stray reading did not pull it away
    assert presence.learned_point(good[:2] + [vague]) is None  # fewer than LEARN_MIN


def test_tag_digest_is_salted_per_organisation_and_short():
    from fleet import tagdigest
    from fleet.tagtokens import new_secret

    a, b = tagdigest.salt(new_secret()), tagdigest.salt(new_secret())
    token = "TG1.1.3.DEMOTAGB.X3ZK7JQ2MRP4TW5A"
    assert a != b and len(a) == 32
    assert tagdigest.digest(a, token) == tagdigest.digest(a, token)
    assert tagdigest.digest(a, token) != tagdigest.digest(b, token)
    assert len(tagdigest.digest(a, token)) == 16 and token not in tagdigest.digest(a, token)


# -- matching -----------------------------------------------------------------------------------

def at_home(session, agency: dict) -> Visit:
    """Mme Durand's home at HOME, her static tag, Alice's phone, Alice's visit there now."""
    org, client = agency["org"], agency["clients"][0]
    client.lat, client.lon = HOME.lat, HOME.lon
    visit = Visit(organisation_id=org.id, client_id=client.id,
                  caregiver_id=agency["caregivers"][0].id, planned_start=NOW,
                  planned_end=NOW + timedelta(hours=1))
    session.add_all([visit,
                     Badge(organisation_id=org.id, kind="client_tag", uid=TAG,
                           client_id=client.id),
                     Device(ident="p1", kind="phone", organisation_id=org.id,
                            caregiver_id=agency["caregivers"][0].id)])
    session.commit()
    return visit


@pytest.fixture
def home(session, agency):
    return at_home(session, agency)


def send(session, clock, *events):
    handle_clock(session, "p1", clock(*events), NOW)
    session.commit()
    match_pending(session)
    session.commit()
    return session.scalars(select(ClockEvent).order_by(ClockEvent.seq)).all()


def manual(seq, visit, pos=None, dir="in", ts=TS):
    ev = {"seq": seq, "dir": dir, "method": "manual", "reason": "Badge absent", "ts": ts,
          "tq": "synced", "visit": visit.id}
    return ev if pos is None else {**ev, "pos": pos}


def read(seq, pos=None, ts=TS):
    ev = {"seq": seq, "tag": TAG, "dir": "in", "method": "nfc", "ts": ts, "tq": "synced"}
    return ev if pos is None else {**ev, "pos": pos}


def kinds(session):
    return sorted(a.kind for a in session.scalars(select(Anomaly)))


def test_manual_clock_in_without_tag_matches_its_visit(session, clock, home):
    [ev] = send(session, clock, manual(1, home))
    assert (ev.match_status, ev.visit_id, ev.proof_level) == ("matched", home.id, "manual")
    assert kinds(session) == []


def test_manual_clock_in_of_another_caregivers_visit_is_not_matched(session, clock, home,
                                                                     agency):
    other = Visit(organisation_id=agency["org"].id, client_id=agency["clients"][1].id,
                  caregiver_id=agency["caregivers"][1].id, planned_start=NOW,
                  planned_end=NOW + timedelta(hours=1))
    session.add(other)
    session.commit()
    [ev] = send(session, clock, manual(1, other, NEAR))
    assert ev.match_status == "anomaly" and kinds(session) == ["unknown_badge"]


def test_manual_far_from_home_is_flagged_and_goes_to_review(session, clock, home, agency):
    [ev] = send(session, clock, manual(1, home, FAR))
    assert (ev.match_status, ev.proof_level) == ("matched", "manual")
    [a] = session.scalars(select(Anomaly)).all()
    assert a.kind == "far_from_home" and a.detail.startswith("5000 m from the home")
    items = review_items(session, agency["org"], NOW - timedelta(days=1),
                         NOW + timedelta(days=1), {"manual"})
    assert [(i.clock_event_id, i.proof_level) for i in items] == [(ev.id, "manual")]


def test_manual_at_the_home_is_corroborated_and_not_reviewed(session, clock, home, agency):
    [ev] = send(session, clock, manual(1, home, NEAR))
    assert ev.proof_level == "position" and kinds(session) == []
    assert review_items(session, agency["org"], NOW - timedelta(days=1),
                        NOW + timedelta(days=1), {"manual"}) == []


def test_static_tag_with_and_without_a_position(session, clock, home):
    first, second = send(session, clock, read(1, NEAR),
                         {**read(2), "dir": "out", "ts": TS + 1800})
    assert (first.proof_level, first.tag_proof) == ("static_tag_near", "static")
    assert second.proof_level == "static_tag"


def test_static_tag_read_far_away_is_flagged(session, clock, home):
    [ev] = send(session, clock, read(1, FAR))
    assert ev.proof_level == "static_tag" and ev.match_status == "matched"
    assert kinds(session) == ["far_from_home"]


def test_reader_box_card_is_near_by_construction(session, clock, event, agency):
    handle_clock(session, "r1", clock(event(1)), NOW)
    match_pending(session)
    session.commit()
    assert session.scalar(select(ClockEvent.proof_level)) == "static_tag_near"


def test_refused_tag_has_no_proof_level(session, clock, home, agency):
    badge = session.scalars(select(Badge).where(Badge.uid == TAG)).one()
    badge.active = False
    session.commit()
    [ev] = send(session, clock, read(1, NEAR))
    assert ev.proof_level is None and kinds(session) == ["revoked_badge"]


def test_reference_point_learned_from_tag_reads(session, clock, home, agency):
    """Without lat/lon on the client, three tag reads with a position teach the home; a
    manual clock-in 5 km away is then flagged, one at the home corroborated."""
    client = agency["clients"][0]
    client.lat = client.lon = None
    session.commit()
    session.add(Visit(organisation_id=agency["org"].id, client_id=client.id,
                      caregiver_id=agency["caregivers"][0].id,
                      planned_start=NOW + timedelta(hours=2), planned_end=NOW + timedelta(hours=2.5)))
    session.commit()
    evs = [read(1, NEAR, TS + 60), {**read(2, NEAR, TS + 1800), "dir": "out"},
           read(3, NEAR, TS + 7200)]
    # without a reference the first reads prove a static tag only
    assert {e.proof_level for e in send(session, clock, *evs)} == {"static_tag"}
    assert presence.reference_of(session, client, NOW)[1] == "learned"
    # learned from the last LEARN_DAYS only
    assert presence.reference_of(session, client, NOW + timedelta(days=91))[1] == "none"
    later = Visit(organisation_id=agency["org"].id, client_id=client.id,
                  caregiver_id=agency["caregivers"][0].id, planned_start=NOW + timedelta(hours=3),
                  planned_end=NOW + timedelta(hours=4))
    session.add(later)
    session.commit()
    evs = send(session, clock, manual(4, later, FAR, ts=TS + 3 * 3600))
    assert evs[-1].proof_level == "manual" and "far_from_home" in kinds(session)


def test_radius_setting_has_a_range_and_moves_the_flag(session, clock, home, agency):
    org = agency["org"]
    with pytest.raises(agency_settings.SettingsProblem):
        agency_settings.update(session, org, {"home_radius_m": 10}, who="t", role=None)
    agency_settings.update(session, org, {"home_radius_m": 6000}, who="t", role=None)
    session.commit()
    assert agency_settings.read(session, org)["home_radius_m"] == 6000
    [ev] = send(session, clock, manual(1, home, FAR))
    assert ev.proof_level == "position" and kinds(session) == []


def test_bad_position_is_refused_as_bad_event(session, clock, home):
    """NaN, infinities and out-of-range values: `bad_event`, nothing stored."""
    for seq, pos in enumerate(([float("nan"), 2.0, 10], [48.0, float("inf"), 10],
                               [91.0, 2.0, 10], [48.0, 2.0, -1], [48.0, 2.0]), start=1):
        result = handle_clock(session, "p1", clock(manual(seq, home, pos)), NOW)
        assert result.rejected == [{"seq": seq, "reason": "bad_event"}]
    session.commit()
    assert session.scalars(select(ClockEvent)).all() == []


def test_an_event_without_tag_needs_to_be_manual_and_name_its_visit(session, clock, home):
    no_visit = {k: v for k, v in manual(1, home).items() if k != "visit"}
    read_no_tag = {**manual(2, home), "method": "nfc"}
    result = handle_clock(session, "p1", clock(no_visit, read_no_tag), NOW)
    assert result.rejected == [{"seq": 1, "reason": "bad_event"},
                               {"seq": 2, "reason": "bad_event"}]


# -- PostgreSQL ---------------------------------------------------------------------------------

@pytest.mark.postgres
def test_proof_levels_on_postgresql(pg_session, clock):
    s = pg_session
    agency = make_agency(s)
    visit = at_home(s, agency)
    evs = send(s, clock, read(1, NEAR), manual(2, visit, FAR, "out", TS + 1800))
    assert [e.proof_level for e in evs] == ["static_tag_near", "manual"]
    assert [a.kind for a in s.scalars(select(Anomaly))] == ["far_from_home"]
    items = review_items(s, agency["org"], NOW - timedelta(days=1), NOW + timedelta(days=1),
                         proofs={"manual"})
    assert [i.clock_event_id for i in items if i.kind == "manual"] == [evs[1].id]


# -- where it shows: the visit's detail, the board, the exports ---------------------------------

def test_proof_level_shows_on_visit_board_and_exports(session, clock, home, agency):
    import csv
    import io

    from fleet.exports import tabular
    from fleet.visit_detail import visit_detail
    from fleet.web.board import board_rows

    send(session, clock, read(1, NEAR), manual(2, home, FAR, "out", TS + 1800))
    d = visit_detail(session, home)
    assert [(e["dir"], e["proof_level"]) for e in d["events"]] == [
        ("in", "static_tag_near"), ("out", "manual")]
    assert [a["kind"] for a in d["anomalies"]] == ["far_from_home"]
    [row] = board_rows(session, agency["org"], NOW.date(), NOW + timedelta(hours=2))
    assert (row.proof_in, row.proof_out) == ("static_tag_near", "manual")
    for kind in ("payroll", "billing"):
        export = tabular.prepare(session, agency["org"].id, kind, NOW.date(), NOW.date())
        rows = list(csv.DictReader(io.StringIO(b"".join(export.chunks()).decode())))
        assert rows and {r["weakest_proof"] for r in rows} == {"manual"}, kind
