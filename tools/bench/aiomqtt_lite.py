"""A minimal asyncio MQTT 3.1.1 client for the fleet benchmark's virtual devices.

Thousands of paho clients need thousands of threads; these are a few bytes of state on one
event loop. Just enough of the protocol for a device: CONNECT with a last will, SUBSCRIBE,
PUBLISH at QoS 0 or 1 (PUBACKs are counted, not awaited), PUBACK of what the broker sends at
QoS 1, PINGREQ. No reconnect, no QoS 2: the bench counts a dropped device, it does not hide it.

A connection can leave from a source address of its own (`connect(..., source="127.3.0.7")`):
bound before the connect with IP_BIND_ADDRESS_NO_PORT, so the kernel picks the port at connect
time among the ports free for that (source, destination) pair. Spread over 127.0.0.0/8, 50,000
connections never run out of ephemeral ports. A failed connect raises; `error_kind` names it in
a word for the bench's counters (ECONNREFUSED, timeout, closed, connack_5...).
"""
from __future__ import annotations

import asyncio
import errno
import socket
import struct
from typing import Callable

OnMessage = Callable[["LiteClient", str, bytes], None]
# Linux: bind() reserves no port, connect() picks one (include/uapi/linux/in.h)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
CONNACK_REASONS = {1: "bad protocol version", 2: "identifier rejected",
                   3: "server unavailable", 4: "bad user name or password",
                   5: "not authorized"}


class ConnackRefused(ConnectionError):
    """The broker answered CONNECT with a non-zero return code."""

    def __init__(self, client_id: str, code: int) -> None:
        super().__init__(f"{client_id}: CONNACK {code} "
                         f"({CONNACK_REASONS.get(code, 'unknown code')})")
        self.code = code


def error_kind(error: BaseException) -> str:
    """One word for a connection's failure: what the bench counts instead of a traceback."""
    if isinstance(error, ConnackRefused):
        return f"connack_{error.code}"
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(error, asyncio.IncompleteReadError):
        return "closed"  # the broker closed the connection (before CONNACK, or later)
    if isinstance(error, OSError) and error.errno in errno.errorcode:
        return errno.errorcode[error.errno]
    return type(error).__name__


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(client_id: str, keepalive: int, will_topic: str | None = None,
                   will_payload: bytes = b"", will_qos: int = 1, will_retain: bool = True) -> bytes:
    flags = 0x02  # clean session
    payload = _str(client_id)
    if will_topic:
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += _str(will_topic) + _str(will_payload)
    return packet(0x10, _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
                  + payload)


def publish_packet(topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                   packet_id: int = 0) -> bytes:
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body)


class LiteClient:
    def __init__(self, client_id: str, on_message: OnMessage | None = None) -> None:
        self.client_id = client_id
        self.on_message = on_message
        self.connected = False
        self.lost: str | None = None  # why an established connection ended (error_kind)
        self.pubacks = 0
        self._next_id = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task] = []

    def _pid(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    async def connect(self, host: str, port: int, keepalive: int = 60,
                      will: tuple[str, bytes] | None = None, timeout: float = 30.0,
                      source: str | None = None) -> None:
        """Connected once the broker's CONNACK accepts; else raises (OSError, timeout,
        IncompleteReadError when the broker closes, ConnackRefused) with the socket closed."""
        self.lost = None
        try:
            await asyncio.wait_for(self._handshake(host, port, keepalive, will, source),
                                   timeout)
        except BaseException:
            self._close_transport()
            raise
        self.connected = True
        self._tasks = [asyncio.create_task(self._read_loop()),
                       asyncio.create_task(self._ping_loop(keepalive))]

    async def _handshake(self, host: str, port: int, keepalive: int,
                         will: tuple[str, bytes] | None, source: str | None) -> None:
        if source is None:
            self._reader, self._writer = await asyncio.open_connection(host, port)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((source, 0))
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, (host, port))
            except BaseException:
                sock.close()
                raise
            self._reader, self._writer = await asyncio.open_connection(sock=sock)
        self._writer.write(connect_packet(self.client_id, keepalive,
                                          will[0] if will else None, will[1] if will else b""))
        first, body = await self._read_packet()
        if first >> 4 != 2 or len(body) < 2:
            raise ConnectionError(f"{self.client_id}: expected CONNACK, got {first:#x}")
        if body[1] != 0:
            raise ConnackRefused(self.client_id, body[1])

    def _close_transport(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _read_packet(self) -> tuple[int, bytes]:
        r = self._reader
        first = (await r.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            b = (await r.readexactly(1))[0]
            length |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        return first, (await r.readexactly(length) if length else b"")

    async def _read_loop(self) -> None:
        try:
            while True:
                first, body = await self._read_packet()
                kind = first >> 4
                if kind == 3:  # PUBLISH
                    qos = (first >> 1) & 3
                    (n,) = struct.unpack_from("!H", body)
                    topic = body[2:2 + n].decode()
                    rest = 2 + n
                    if qos:
                        pid = body[rest:rest + 2]
                        rest += 2
                        self._writer.write(b"\x40\x02" + pid)
                    if self.on_message:
                        self.on_message(self, topic, body[rest:])
                elif kind == 4:  # PUBACK
                    self.pubacks += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a dropped device is counted, not raised
            self.lost = error_kind(e)
        finally:
            self.connected = False
            if self._writer is not None and not self._writer.is_closing():
                self._writer.close()  # half-open: later writes would only log warnings

    async def _ping_loop(self, keepalive: int) -> None:
        while self.connected:
            await asyncio.sleep(keepalive * 0.75)
            self.send(b"\xc0\x00")

    def send(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.send(packet(0x82, struct.pack("!H", self._pid()) + _str(topic) + bytes([qos])))

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.send(publish_packet(topic, payload, qos, retain, self._pid() if qos else 0))

    def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._close_transport()
        self.connected = False
