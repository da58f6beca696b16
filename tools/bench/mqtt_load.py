"""The two plain-paho ends of the ingest benchmark, each run as its own process.

`publish`: devices publishing pre-built clock batches as fast as QoS 1 allows (open loop).
`rawsub`: a plain paho QoS 1 subscriber that only counts what it receives: the yardstick the
fleet's ingest is compared with. Both print one JSON line with wall-clock times.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


def batches(device: str, n_events: int, per_message: int, now: int) -> list[bytes]:
    """The clock batches a device would send after `n_events` taps (protocol v1)."""
    out = []
    for first in range(1, n_events + 1, per_message):
        events = [
            {"seq": s, "badge": "04B00000000001", "dir": "in" if s % 2 else "out",
             "method": "nfc", "ts": now - (n_events - s), "tq": "synced"}
            for s in range(first, min(first + per_message, n_events + 1))
        ]
        out.append(json.dumps({"now": now, "events": events}, separators=(",", ":")).encode())
    return out


def publish(host: str, port: int, devices: list[str], per_device: int, per_message: int) -> dict:
    now = int(time.time())
    msgs = [(f"tg/v1/{d}/up/clock", p) for d in devices
            for p in batches(d, per_device, per_message, now)]
    # interleave devices as a fleet would
    order = sorted(range(len(msgs)), key=lambda i: (i % (len(msgs) // len(devices) or 1), i))
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher",
                    protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect(host, port)
    c.loop_start()
    t0 = time.time()
    infos = [c.publish(msgs[i][0], msgs[i][1], qos=1) for i in order]
    for info in infos:
        info.wait_for_publish(120)
    t1 = time.time()
    c.disconnect()
    c.loop_stop()
    return {"t_start": t0, "t_end": t1, "messages": len(msgs)}


def rawsub(host: str, port: int, expected_messages: int, per_message: int, ready_file: str,
           timeout: float) -> dict:
    state = {"n": 0, "first": None, "last": None}
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client, userdata, msg):
        t = time.time()
        if state["first"] is None:
            state["first"] = t
        state["n"] += 1
        state["last"] = t
        if state["n"] >= expected_messages:
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-rawsub",
                    protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda client, *a: client.subscribe("tg/v1/+/up/clock", qos=1)
    c.connect(host, port)
    c.loop_start()
    subscribed.wait(10)
    open(ready_file, "w").write("ready")
    done.wait(timeout)
    c.disconnect()
    c.loop_stop()
    return {"messages": state["n"], "events": state["n"] * per_message,
            "t_first": state["first"], "t_last": state["last"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["publish", "rawsub"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--devices", default="")
    p.add_argument("--per-device", type=int, default=0)
    p.add_argument("--per-message", type=int, default=8)
    p.add_argument("--expected", type=int, default=0)
    p.add_argument("--ready-file", default="")
    p.add_argument("--timeout", type=float, default=300)
    a = p.parse_args(argv)
    if a.role == "publish":
        res = publish(a.host, a.port, a.devices.split(","), a.per_device, a.per_message)
    else:
        res = rawsub(a.host, a.port, a.expected, a.per_message, a.ready_file, a.timeout)
    sys.stdout.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
