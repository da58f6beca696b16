"""The device protocol v1 (docs/protocol.md): topics, clock batches, acks, health.

JSON is written by hand, keys in a fixed order and no spaces, because MicroPython's dicts do
not keep insertion order: the same call gives the same bytes on CPython and on the ESP32.
"""
import json

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

MAX_MESSAGE = const(1024)
MAX_EVENTS = const(16)
MAX_ID = const(2147483647)  # seq and visit: 1 to 2^31 - 1, as the fleet checks them
_DIRS = ("in", "out")
_METHODS = ("nfc", "qr", "manual")
_TQ = ("synced", "rtc", "unsynced")
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_HEX = "0123456789ABCDEF"


class CodecError(ValueError):
    pass


def topic(device, suffix):
    """`tg/v1/<device>/<suffix>`, e.g. topic("r1", "up/clock")."""
    if not 1 <= len(device) <= 64 or any(c not in _ID_CHARS for c in device):
        raise CodecError("bad device id %r: 1 to 64 of A-Z a-z 0-9 - _" % device)
    return "tg/v1/" + device + "/" + suffix


def _str(s):
    # Non-ASCII stays raw UTF-8 (CPython's json would \u-escape it, MicroPython's would not).
    out = ['"']
    for c in s:
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif ord(c) < 0x20:
            out.append("\\u%04x" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _int(name, v):
    if type(v) is not int:  # bool is not an int here (it is on CPython's isinstance)
        raise CodecError("%s must be an int, got %r" % (name, v))
    return str(v)


def encode_event(dir, method, ts, tq, badge=None, tag=None, reason=None, visit=None):
    """One clock event as compact JSON bytes, without `seq` (the journal's form)."""
    if dir not in _DIRS:
        raise CodecError("dir must be in or out, got %r" % (dir,))
    if method not in _METHODS:
        raise CodecError("method must be nfc, qr or manual, got %r" % (method,))
    if tq not in _TQ:
        raise CodecError("tq must be synced, rtc or unsynced, got %r" % (tq,))
    if badge is None and tag is None:
        raise CodecError("an event needs a badge or a tag")
    parts = []
    if badge is not None:
        if not 8 <= len(badge) <= 20 or any(c not in _HEX for c in badge):
            raise CodecError("badge must be 8 to 20 upper-case hex digits, got %r" % (badge,))
        parts.append('"badge":"' + badge + '"')
    if tag is not None:
        # a SUN URL (picc_data and cmac, docs/protocol.md) up to 255
        if not 1 <= len(tag) <= (255 if "picc_data=" in tag else 64) or "\x00" in tag:
            raise CodecError("tag must be 1 to 64 characters (255 for a SUN URL), without NUL")
        parts.append('"tag":' + _str(tag))
    parts.append('"dir":"' + dir + '"')
    parts.append('"method":"' + method + '"')
    if method == "manual" and not reason:
        raise CodecError("a manual event needs a reason")
    if reason is not None:
        if len(reason) > 120 or "\x00" in reason:
            raise CodecError("reason over 120 characters, or with a NUL")
        parts.append('"reason":' + _str(reason))
    parts.append('"ts":' + _int("ts", ts))
    parts.append('"tq":"' + tq + '"')
    if visit is not None:
        if type(visit) is not int or not 1 <= visit <= MAX_ID:
            raise CodecError("visit must be an int from 1 to 2^31 - 1, got %r" % (visit,))
        parts.append('"visit":' + _int("visit", visit))
    return ("{" + ",".join(parts) + "}").encode()


def with_seq(seq, event):
    """The stored event with its seq put first. An empty event (a journal placeholder for a
    damaged record) becomes {"seq":N}: the fleet rejects it, which still acks that seq."""
    if type(seq) is not int or not 1 <= seq <= MAX_ID:
        raise CodecError("seq must be an int from 1 to 2^31 - 1, got %r" % (seq,))
    head = '{"seq":%d' % seq
    if len(event) <= 2:
        return (head + "}").encode()
    return (head + ",").encode() + event[1:]


def build_clock_batch(now, items, limit=MAX_MESSAGE):
    """Pack (seq, event) items into one up/clock payload: as many as fit under `limit` bytes,
    at most 16, at least 1. Returns (payload, number of items used)."""
    if not items:
        raise CodecError("a batch needs at least one event")
    head = ('{"now":' + _int("now", now) + ',"events":[').encode()
    parts = []
    size = len(head) + 2  # + "]}"
    for seq, event in items[:MAX_EVENTS]:
        e = with_seq(seq, event)
        extra = len(e) + (1 if parts else 0)
        if parts and size + extra > limit:
            break
        parts.append(e)
        size += extra
    return head + b",".join(parts) + b"]}", len(parts)


def parse_ack(payload):
    """down/ack payload -> (ack, [(seq, reason), ...]). Raises CodecError when malformed."""
    if len(payload) > MAX_MESSAGE:
        raise CodecError("ack over %d bytes" % MAX_MESSAGE)
    try:
        msg = json.loads(payload)
    except Exception:  # ValueError, or UnicodeError on bad UTF-8
        raise CodecError("ack is not JSON")
    if type(msg) is not dict:
        raise CodecError("ack is not a JSON object")
    ack = msg.get("ack")
    if type(ack) is not int or ack < 0:
        raise CodecError("ack: 'ack' must be an int >= 0, got %r" % (ack,))
    rejected = msg.get("rejected")
    if type(rejected) is not list:
        raise CodecError("ack: 'rejected' must be a list")
    out = []
    for r in rejected:
        if type(r) is not dict or type(r.get("seq")) is not int or type(r.get("reason")) is not str:
            raise CodecError("ack: each rejected item needs an int seq and a str reason")
        out.append((r["seq"], r["reason"]))
    return ack, out


def encode_health(now, fw, up, heap, jd, jfull, rd, tq, rssi=None, bat=None):
    """One up/health payload; rssi and bat are left out when unknown."""
    parts = ['"now":' + _int("now", now), '"fw":' + _str(fw), '"up":' + _int("up", up),
             '"heap":' + _int("heap", heap)]
    if rssi is not None:
        parts.append('"rssi":' + _int("rssi", rssi))
    if bat is not None:
        parts.append('"bat":' + _int("bat", bat))
    parts.append('"jd":' + _int("jd", jd))
    parts.append('"jfull":' + ("true" if jfull else "false"))
    parts.append('"rd":' + _str(rd))
    if tq not in _TQ:
        raise CodecError("tq must be synced, rtc or unsynced, got %r" % (tq,))
    parts.append('"tq":"' + tq + '"')
    return ("{" + ",".join(parts) + "}").encode()
