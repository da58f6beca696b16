"""The bench's minimal MQTT client, against exact bytes (MQTT 3.1.1)."""
from __future__ import annotations

from tools.bench.aiomqtt_lite import _varint, connect_packet, publish_packet


def test_remaining_length():
    assert [_varint(n) for n in (0, 127, 128, 16383, 16384)] == [
        b"\x00", b"\x7f", b"\x80\x01", b"\xff\x7f", b"\x80\x80\x01"]


def test_connect_with_a_retained_qos1_will():
    got = connect_packet("d1", 60, "tg/v1/d1/state", b"offline")
    body = (b"\x00\x04MQTT\x04" + bytes([0x02 | 0x04 | 0x08 | 0x20]) + b"\x00\x3c"
            + b"\x00\x02d1" + b"\x00\x0etg/v1/d1/state" + b"\x00\x07offline")
    assert got == b"\x10" + bytes([len(body)]) + body


def test_publish_qos0_and_qos1_retained():
    assert publish_packet("a/b", b"x") == b"\x30\x06\x00\x03a/bx"
    assert publish_packet("a/b", b"x", qos=1, retain=True, packet_id=7) == \
        b"\x33\x08\x00\x03a/b\x00\x07x"
