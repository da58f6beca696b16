# The codec on MicroPython. Every payload is also printed as a "BYTES <hex>" line: the test
# runs this script on CPython too and requires identical lines.
import binascii
import json

from _check import done, eq, raises
from firmware.codec import (CodecError, build_clock_batch, encode_event, encode_health,
                            parse_ack, topic)


def show(b):
    print("BYTES " + binascii.hexlify(b).decode())
    return b


IN = show(encode_event("in", "nfc", 1795426549, "synced", badge="04A1B2C3D4E5F6"))
eq(IN, b'{"badge":"04A1B2C3D4E5F6","dir":"in","method":"nfc","ts":1795426549,"tq":"synced"}',
   "event")
MANUAL = show(encode_event("out", "manual", 1795428000, "rtc", tag="C12-7F3A",
                           reason="tag unreadable"))
eq(MANUAL, b'{"tag":"C12-7F3A","dir":"out","method":"manual","reason":"tag unreadable",'
   b'"ts":1795428000,"tq":"rtc"}', "manual event")
ev = show(encode_event("in", "manual", 1, "rtc", tag='a"b\\c', reason="\u00e9tiquette\nillisible",
                       visit=2000000000))
eq(ev, b'{"tag":"a\\"b\\\\c","dir":"in","method":"manual","reason":"\xc3\xa9tiquette\\u000a'
   b'illisible","ts":1,"tq":"rtc","visit":2000000000}', "escaped event")
raises(CodecError, lambda: encode_event("in", "nfc", 1, "synced", "04A1B2C3", visit=2147483648))
eq(json.loads(ev)["reason"], "\u00e9tiquette\nillisible", "round trip")
raises(CodecError, encode_event, "in", "nfc", True, "synced", "04A1B2C3")
raises(CodecError, encode_event, "in", "nfc", 1, "synced", "04a1b2c3")
raises(CodecError, encode_event, "in", "manual", 1, "synced", "04A1B2C3")

payload, n = build_clock_batch(1795426600, [(41, IN), (42, MANUAL)])
show(payload)
eq(n, 2, "batch size")
eq(payload, b'{"now":1795426600,"events":[{"seq":41,"badge":"04A1B2C3D4E5F6","dir":"in",'
   b'"method":"nfc","ts":1795426549,"tq":"synced"},{"seq":42,"tag":"C12-7F3A","dir":"out",'
   b'"method":"manual","reason":"tag unreadable","ts":1795428000,"tq":"rtc"}]}', "batch")
payload, n = build_clock_batch(1795426600, [(i, IN) for i in range(1, 30)] + [(30, b"")])
show(payload)
eq((n, len(payload) <= 1024), (10, True), "packed under 1 KiB")
show(build_clock_batch(7, [(9, b"")])[0])

eq(parse_ack(b'{"ack": 42, "rejected": [{"seq": 40, "reason": "ts_future"}]}'),
   (42, [(40, "ts_future")]), "ack")
for bad in (b"", b"nope", b"[1]", b'{"ack": true, "rejected": []}', b'{"ack": -1, "rejected": []}',
            b'{"ack": 5}', b'{"ack": 5, "rejected": [{"seq": 1}]}', b"\xff\xfe"):
    raises(CodecError, parse_ack, bad)

show(encode_health(1795426600, "0.1.0", 3600, 41234, 3, False, "ok", "synced", -61, 87))
eq(encode_health(1, "0.1.0", 2, 3, 0, True, "ok", "unsynced"),
   b'{"now":1,"fw":"0.1.0","up":2,"heap":3,"jd":0,"jfull":true,"rd":"ok","tq":"unsynced"}',
   "health")
eq(topic("demo-r1", "up/clock"), "tg/v1/demo-r1/up/clock", "topic")
raises(CodecError, topic, "a/b", "up/clock")
done()
