"""The box's one way onto the network: a TCP (or TLS) stream to host:port.

`open_stream(host, port, ssl=None)` -> (reader, writer) with the asyncio stream subset the
MQTT client uses: `await reader.read(n)` (b"" at EOF), `await reader.readexactly(n)`,
`writer.write(b)`, `await writer.drain()`, `writer.close()`, `await writer.wait_closed()`.
`ssl` is an SSLContext from firmware/runtime/tls.py when the port asks for TLS.

It is asyncio.open_connection on every board: the ESP32, CPython, and the WebAssembly
virtual board, whose boot installs its own (tools/vboard/rom/_vboxnet.py, TCP bridged to
Node's `net`; it has no ssl module and raises OSError(EOPNOTSUPP) when TLS is asked).
"""
import asyncio


async def open_stream(host, port, ssl=None):
    if ssl is None:
        return await asyncio.open_connection(host, port)
    return await asyncio.open_connection(host, port, ssl=ssl, server_hostname=host)
