"""Shape checks of the device protocol's messages (docs/protocol.md). Pure functions."""
from __future__ import annotations

import re
from typing import Any

MAX_PAYLOAD = 1024
MAX_EVENTS = 16
FUTURE_S = 24 * 3600
PAST_S = 30 * 86400
# numeric bounds (docs/protocol.md): a value past them is a bad event or a bad batch, never an
# integer the database cannot hold (PostgreSQL's INTEGER and BIGINT overflow fail the batch)
SEQ_MAX = 2**31 - 1
TS_MIN, TS_MAX = 946_684_800, 4_102_444_800  # 2000-01-01 .. 2100-01-01 UTC
ACCURACY_MAX_M = 100_000
INT31 = 2**31 - 1
SUN_TAG_MAX = 255
TOPIC = re.compile(r"^tg/v1/([A-Za-z0-9_-]{1,64})/up/(clock|health)$")
_BADGE = re.compile(r"^[0-9A-F]{8,20}$")
TIME_QUALITIES = ("synced", "rtc", "unsynced")
# the keys that make an event what it is: a resend must carry the same values
CONTENT_KEYS = ("badge", "tag", "dir", "method", "reason", "ts", "tq", "visit", "pos")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def int_in(v: Any, lo: int, hi: int) -> bool:
    return is_int(v) and lo <= v <= hi


def number_in(v: Any, lo: float, hi: float) -> bool:
    """A finite number in [lo, hi]: NaN and the infinities compare false, so they fail."""
    return is_number(v) and lo <= v <= hi


def position_ok(pos: Any) -> bool:
    """`[lat, lon, accuracy_m]`, each finite and in range."""
    return (isinstance(pos, list) and len(pos) == 3 and number_in(pos[0], -90, 90)
            and number_in(pos[1], -180, 180) and number_in(pos[2], 0, ACCURACY_MAX_M))


def batch_problem(doc: Any) -> str | None:
    """None when `doc` is a well-formed clock batch, else the reason to refuse it whole."""
    if not isinstance(doc, dict) or not int_in(doc.get("now"), TS_MIN, TS_MAX):
        return "bad_batch"
    events = doc.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        return "bad_batch"
    return None


def event_seq(ev: Any) -> int | None:
    """The event's seq if it can be acked (an int from 1 to 2^31 - 1), else None."""
    seq = ev.get("seq") if isinstance(ev, dict) else None
    return seq if int_in(seq, 1, SEQ_MAX) else None


def text_ok(value: Any, most: int, least: int = 1) -> bool:
    """A string of `least` to `most` characters without NUL: PostgreSQL's text refuses NUL,
    and one such string would fail its whole batch again at every resend."""
    return isinstance(value, str) and least <= len(value) <= most and "\x00" not in value


def tag_max(tag: Any) -> int:
    """A tag's text is 64 characters at most; the URL of an NTAG 424 DNA's SUN read, which
    carries picc_data and cmac (fleet.sun), up to 255."""
    return SUN_TAG_MAX if isinstance(tag, str) and "picc_data=" in tag else 64


def event_problem(ev: dict, now_s: float) -> str | None:
    """None for a good event, else bad_event, ts_future or ts_past. `ev` has a valid seq."""
    badge, tag = ev.get("badge"), ev.get("tag")
    # a phone's manual clock-in names its visit, not a tag: the phone holds no tag tokens
    if badge is None and tag is None and not (ev.get("method") == "manual" and "visit" in ev):
        return "bad_event"
    if badge is not None and not (isinstance(badge, str) and _BADGE.match(badge)):
        return "bad_event"
    if tag is not None and not text_ok(tag, tag_max(tag)):
        return "bad_event"
    if ev.get("dir") not in ("in", "out") or ev.get("method") not in ("nfc", "qr", "manual"):
        return "bad_event"
    reason = ev.get("reason")
    if reason is not None and not text_ok(reason, 120, 0):
        return "bad_event"
    if ev["method"] == "manual" and not reason:
        return "bad_event"
    if not int_in(ev.get("ts"), TS_MIN, TS_MAX) or ev.get("tq") not in TIME_QUALITIES:
        return "bad_event"
    if "visit" in ev and not int_in(ev["visit"], 1, SEQ_MAX):
        return "bad_event"
    pos = ev.get("pos")
    if pos is not None and not position_ok(pos):
        return "bad_event"
    if ev["ts"] > now_s + FUTURE_S:
        return "ts_future"
    if ev["ts"] < now_s - PAST_S:
        return "ts_past"
    return None


def content(ev: dict) -> tuple:
    return tuple(tuple(v) if isinstance(v := ev.get(k), list) else v for k in CONTENT_KEYS)


def health_ok(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    if not int_in(doc.get("now"), TS_MIN, TS_MAX):
        return False
    if not all(int_in(doc.get(k), 0, INT31) for k in ("up", "heap", "jd")):
        return False
    if not text_ok(doc.get("fw"), 32, 0):
        return False
    if not isinstance(doc.get("jfull"), bool) or not text_ok(doc.get("rd"), 1000, 0):
        return False
    if doc.get("tq") not in TIME_QUALITIES:
        return False
    bounds = {"rssi": (-200, 0), "bat": (0, 100), "off": (-INT31, INT31)}
    return all(doc.get(k) is None or int_in(doc[k], lo, hi) for k, (lo, hi) in bounds.items())
