"""Where a clock message's time went in the worker: its slowest ones, stage by stage.

For each clock batch a worker stores, four instants (seconds since the epoch, this machine's
clock): `in_stream` (JetStream stored it: the message's own timestamp; None over MQTT),
`received` (the worker's queue got it), `committed` (its transaction committed), `acked` (its
device ack handed to the down path). The `keep` slowest (from the first known instant to
`acked`) are kept with their stages; the counters say how many were traced. Read by
`telegest bench fleet` (`worker_slowest_clock`) to tell a stall before the stream, in the
worker's queue, in the database or on the way down apart (docs/benchmarks.md).
"""
from __future__ import annotations

import threading
from datetime import datetime


def stream_time(handle) -> float | None:
    """The JetStream timestamp of a fetched message (nats-py parses its reply subject)."""
    try:
        ts = handle.metadata.timestamp
    except Exception:  # noqa: BLE001 - not a JetStream message, or no metadata: untraced
        return None
    return ts.timestamp() if isinstance(ts, datetime) else None


class TapTrace:
    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self.traced = 0
        self._slowest: list[dict] = []  # the slowest first, each with its stages
        self._lock = threading.Lock()

    def note(self, messages: list, committed: float, acked: float) -> None:
        """The clock messages of one stored batch: (topic, payload, received[, handle]),
        `received` seconds or a datetime (as fleet.ingest takes it)."""
        for m in messages:
            if not m[0].endswith("/up/clock"):
                continue
            in_stream = stream_time(m[3]) if len(m) > 3 else None
            received = m[2].timestamp() if isinstance(m[2], datetime) else float(m[2])
            first = in_stream if in_stream is not None else received
            row = {"device": m[0].split("/")[2], "at": first,
                   "total_s": round(acked - first, 3),
                   "stream_to_queue_s": None if in_stream is None
                   else round(received - in_stream, 3),
                   "queue_to_commit_s": round(committed - received, 3),
                   "commit_to_ack_s": round(acked - committed, 3)}
            with self._lock:
                self.traced += 1
                if len(self._slowest) < self.keep or row["total_s"] > self._slowest[-1]["total_s"]:
                    self._slowest.append(row)
                    self._slowest.sort(key=lambda r: -r["total_s"])
                    del self._slowest[self.keep:]

    def slowest(self, since: float = 0.0) -> list[dict]:
        """The slowest, each with its stages in seconds (stream to queue, queue to commit,
        commit to ack) and `at` (its first instant minus `since`)."""
        with self._lock:
            return [dict(r, at=round(r["at"] - since, 2)) for r in self._slowest]
