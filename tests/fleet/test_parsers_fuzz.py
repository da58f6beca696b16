"""Finding "fuzzed" (issue #14, item 11): Hypothesis drives the protocol parsers with hostile
input; none raises anything but its documented refusal.

- fleet ingest (`up/clock`, `up/health`): any bytes, any JSON shape: a refusal or a rejection
  counted and kept, never an exception, and the batch's good events are still stored;
- the firmware codec's ack parser: CodecError or a value;
- NDEF (tag memory and messages): NdefError or records;
- the CSV planning import: ImportFileError or row errors.
"""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from firmware import codec, ndef
from fleet.ingest import ingest_batch
from fleet.models import ClockEvent, Organisation
from fleet.visit_import import ImportFileError, parse_planning

from .conftest import NOW, TS

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

# JSON values, with the awkward ones: huge and negative integers, NaN and infinities, NUL,
# deep nesting, booleans where integers go
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
KEYS = ["seq", "badge", "tag", "dir", "method", "reason", "ts", "tq", "visit", "pos"]
events = st.fixed_dictionaries({}, optional={k: values for k in KEYS}) | values
GOOD = {"seq": 1, "badge": "04A1B2C3D4E5F6", "dir": "in", "method": "nfc", "ts": TS,
        "tq": "synced"}


@FAST
@given(raw=st.binary(max_size=1200) | values.map(lambda v: json.dumps(v).encode()),
       health=st.binary(max_size=300) | values.map(lambda v: json.dumps(v).encode()))
def test_finding_fuzzed_ingest_never_raises_on_any_message(session, agency, raw, health):
    ingest_batch(session, [("tg/v1/r1/up/clock", raw, NOW), ("tg/v1/r1/up/health", health, NOW)])
    session.rollback()


@FAST
@given(bad=st.lists(events, min_size=1, max_size=6))
def test_finding_fuzzed_a_hostile_event_never_costs_the_good_one(session, agency, bad):
    payload = json.dumps({"now": TS, "events": [GOOD] + bad}).encode()
    acks = ingest_batch(session, [("tg/v1/r1/up/clock", payload, NOW)])
    if len(payload) <= 1024 and len(bad) < 16:
        assert session.scalar(select(ClockEvent.seq).where(ClockEvent.seq == 1)) == 1
        assert acks and acks[0].ack >= 1
    session.rollback()


@FAST
@given(payload=st.binary(max_size=300) | values.map(lambda v: json.dumps(v).encode()))
def test_finding_fuzzed_the_firmware_ack_parser(payload):
    try:
        codec.parse_ack(payload)
    except codec.CodecError:
        pass


@FAST
@given(mem=st.binary(max_size=300))
def test_finding_fuzzed_ndef_tag_memory_and_messages(mem):
    for parse in (ndef.find_message, ndef.decode_message):
        try:
            out = parse(mem)
        except ndef.NdefError:
            continue
        if parse is ndef.decode_message:
            for record in out:
                for decode in (ndef.decode_text, ndef.decode_uri):
                    try:
                        decode(record)
                    except ndef.NdefError:
                        pass


csv_text = st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=7), max_size=6).map(
    lambda rows: "\n".join(",".join(r) for r in rows))


@FAST
@given(data=st.binary(max_size=400) | csv_text.map(str.encode)
       | csv_text.map(lambda t: ("client,caregiver,date,start,end,service\n" + t).encode()))
def test_finding_fuzzed_the_csv_planning_import(session, agency, data):
    org = session.get(Organisation, agency["org"].id)
    try:
        result = parse_planning(session, org, data)
    except ImportFileError:
        return
    assert len(result.visits) + len(result.errors) >= 0


# -- SUN URLs (issue #11): a read taken apart, or what is wrong with it in words -----------------
HEXD = st.text("0123456789abcdefABCDEF", min_size=0, max_size=40)
sun_urls = (st.text(max_size=120)
            | st.builds(lambda base, picc, mac, ref: f"{base}?picc_data={picc}&cmac={mac}{ref}",
                        st.sampled_from(["https://tg.example/s", "", "http://[::1", "//x"]),
                        HEXD, HEXD, st.text(max_size=12).map(lambda r: f"&c={r}")
                        | st.sampled_from(["&c=²", "&g=١٢", "&c=1²", "&c=12345678901"])
                        | st.text(max_size=12).map(lambda r: f"&g={r}") | st.just("")))


@FAST
@given(sun_urls)
def test_finding_fuzzed_sun_url_parser_refuses_in_words(url):
    from fleet import sun

    read = sun.parse_url(url)
    assert isinstance(read, (sun.SunRead, str))
    if isinstance(read, sun.SunRead):
        assert len(read.picc) == 16 and len(read.mac) == 8
        assert read.ref is None or 0 <= read.ref < 10**10
    result = sun.verify_url(url, "00" * 16, "00" * 16)  # once: '²'.isdigit() and int('²') raised
    assert result.valid in (True, False) and (result.valid or result.reason)
