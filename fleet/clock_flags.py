"""Time that can be trusted (issue #11 item 4): `clock_far`, an event whose device time is far
from when an online device sent it.

A device connected to the broker sends an event within seconds of taking it; only a device
offline holds events in its journal. So an event is flagged when, in the fleet's time, it was
taken (device time + the batch's measured offset, which cancels the device clock's error) more
than FAR_S before it arrived although the device's MQTT link (its last will state,
`device_links`) had been `online` since before then. An unsynced device time and a batch
offset over 5 minutes are the older `clock_off` flag (fleet/matching.py); both are attached to
the visit the event matched. Devices without a last will (phones, through the gateway) are not
checked: nothing tells the fleet when they were online.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import DeviceLink

KINDS = ("clock_off", "clock_far")
FAR_S = 300
GRACE = timedelta(seconds=60)  # the link came up just before the event: not proof enough


def load_links(session: Session, device_ids: set[int]) -> dict[int, tuple[str, datetime]]:
    """Each device's last will state and since when."""
    if not device_ids:
        return {}
    return {r.device_id: (r.state, r.changed_at) for r in session.execute(
        select(DeviceLink.device_id, DeviceLink.state, DeviceLink.changed_at)
        .where(DeviceLink.device_id.in_(device_ids)))}


def clock_far(device_ts: datetime, offset_s: int, received_at: datetime | None,
              link: tuple[str, datetime] | None) -> str | None:
    """The `clock_far` detail for one event, or None."""
    if received_at is None:
        return None
    taken = device_ts + timedelta(seconds=offset_s)  # the fleet's time of the tap
    held = int((received_at - taken).total_seconds())
    if held > FAR_S and link is not None and link[0] == "online" \
            and link[1] <= taken - GRACE:
        return (f"sent {held // 60} min after its device time although the device was online "
                f"since {link[1]:%Y-%m-%d %H:%M} UTC: its time is doubtful")
    return None


def attach_visits(anomalies: list[dict], done: dict[tuple[str, int | None], list[int]]) -> None:
    """The clock flags of a matched event name its visit, so the visit page and the board's
    count show them like the other flags."""
    visit_of = {i: visit_id for (_status, visit_id), ids in done.items() if visit_id
                for i in ids}
    for a in anomalies:
        if a["kind"] in KINDS and a["visit_id"] is None:
            a["visit_id"] = visit_of.get(a["clock_event_id"])
