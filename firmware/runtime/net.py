"""The box's one way onto the network: a TCP (or TLS) stream to host:port.

`open_stream(host, port, ssl=None)` -> (reader, writer) with the asyncio stream subset the
MQTT client uses: `await reader.read(n)` (b"" at EOF), `await reader.readexactly(n)`,
`writer.write(b)`, `await writer.drain()`, `writer.close()`, `await writer.wait_closed()`.
`ssl` is an SSLContext from firmware/runtime/tls.py when the port asks for TLS.

On the ESP32 and on CPython this is asyncio.open_connection. The WebAssembly board
(tools/vboard) has no sockets asyncio can poll: there a stream polls the board's bridged
socket without blocking (_Polled), until the board brings its own streams.
"""
import sys


async def open_stream(host, port, ssl=None):
    import asyncio
    if sys.platform == "webassembly":
        return await _polled(host, port, ssl)
    if ssl is None:
        return await asyncio.open_connection(host, port)
    return await asyncio.open_connection(host, port, ssl=ssl, server_hostname=host)


async def _polled(host, port, ssl):
    import socket
    if ssl is not None:
        raise OSError("no TLS on this board")
    ai = socket.getaddrinfo(host, port)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.connect(ai[-1])
    s.setblocking(False)
    st = _Polled(s)
    return st, st


class _Polled:
    """Reader and writer over a non-blocking socket whose reads answer None when empty."""

    def __init__(self, s):
        self.s = s
        self.buf = b""

    async def read(self, n):
        import asyncio
        while True:
            if self.buf:
                b, self.buf = self.buf[:n], self.buf[n:]
                return b
            data = self.s.read(n)
            if data is not None:
                return data
            await asyncio.sleep_ms(5)

    async def readexactly(self, n):
        out = b""
        while len(out) < n:
            b = await self.read(n - len(out))
            if not b:
                raise EOFError
            out += b
        return out

    def write(self, b):
        self.s.write(bytes(b))

    async def drain(self):
        pass

    def close(self):
        self.s.close()

    async def wait_closed(self):
        pass
