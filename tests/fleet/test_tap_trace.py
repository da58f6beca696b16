"""fleet.tap_trace: a clock message's time in the worker, stage by stage (bench fleet)."""
from datetime import datetime, timezone
from types import SimpleNamespace

from fleet.tap_trace import TapTrace, stream_time


def _handle(ts: float):
    return SimpleNamespace(metadata=SimpleNamespace(
        timestamp=datetime.fromtimestamp(ts, tz=timezone.utc)))


def test_the_slowest_are_kept_with_their_stages():
    trace = TapTrace(keep=2)
    t = 1_000_000.0
    # (topic, payload, received[, handle]); health is not traced
    trace.note([("tg/v1/a/up/clock", b"", t + 0.5, _handle(t)),
                ("tg/v1/b/up/health", b"", t, _handle(t - 100))], committed=t + 0.6,
               acked=t + 0.7)
    trace.note([("tg/v1/c/up/clock", b"", datetime.fromtimestamp(t + 10.0, timezone.utc))],
               committed=t + 13.0, acked=t + 13.5)
    trace.note([("tg/v1/d/up/clock", b"", t + 20.0, _handle(t + 19.9))], committed=t + 20.1,
               acked=t + 20.2)
    assert trace.traced == 3
    slow = trace.slowest(since=t)
    assert [s["device"] for s in slow] == ["c", "a"]  # d was the fastest: not kept
    c, a = slow
    assert c == {"device": "c", "at": 10.0, "total_s": 3.5, "stream_to_queue_s": None,
                 "queue_to_commit_s": 3.0, "commit_to_ack_s": 0.5}
    assert a["stream_to_queue_s"] == 0.5 and a["queue_to_commit_s"] == 0.1
    assert a["total_s"] == 0.7 and a["at"] == 0.0


def test_a_handle_without_metadata_is_untraced_not_an_error():
    assert stream_time(object()) is None
    assert stream_time(SimpleNamespace(metadata=SimpleNamespace(timestamp=None))) is None
    assert stream_time(_handle(12.5)) == 12.5
