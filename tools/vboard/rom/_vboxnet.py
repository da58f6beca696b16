# asyncio.open_connection for the virtual box (tools/vboard/vboard.mjs --box), which the
# WebAssembly port's asyncio lacks: TCP streams bridged to Node's `net`
# (tools/vboard/streams.mjs) without blocking the interpreter. Each wait is a JS promise the
# port's asyncio awaits, so the board's other tasks (taps, console) run meanwhile.
# _vboxboot.py installs it as asyncio.open_connection, so the firmware's own
# firmware/runtime/net.py (open_stream, which calls asyncio.open_connection on every board)
# runs unmodified, from the factory package or from an update slot alike.
#
# The stream API is MicroPython's asyncio Stream subset the firmware uses: read(n) (b"" at
# EOF), readexactly(n) (EOFError at EOF), readinto(buf), readline(), write(b), drain(),
# close(), wait_closed(). Reader and writer are one object, as in MicroPython.
# A stream needs the WLAN station connected, as on a box (EHOSTUNREACH otherwise); it dies
# with the station (ENOTCONN). No TLS: this MicroPython has no ssl module.
import binascii

import _vnet
import network

_EBADF = 9
_ECONNRESET = 104
_ENOTCONN = 107
_EHOSTUNREACH = 113
_EOPNOTSUPP = 95


class Stream:
    def __init__(self, h):
        self._h = h

    def _check(self):
        if not self._h:
            raise OSError(_EBADF)
        if not network.connected():  # the Wi-Fi went: the stream is dead
            self.close()
            raise OSError(_ENOTCONN)

    async def _ready(self):
        """Bytes buffered (> 0), 0 at EOF; raises OSError after an error."""
        self._check()
        st = _vnet.ready(self._h)
        if st is None:  # nothing yet: the task sleeps until Node has something
            st = await _vnet.wait(self._h)
            self._check()
        if st < 0:
            raise OSError(-st)
        return st

    async def read(self, n=-1):
        if n == 0:
            return b""
        st = await self._ready()
        if st == 0:
            return b""
        return binascii.unhexlify(_vnet.take(self._h, st if n < 0 else n))

    async def readexactly(self, n):
        out = b""
        while len(out) < n:
            data = await self.read(n - len(out))
            if not data:
                raise EOFError
            out += data
        return out

    async def readinto(self, buf):
        data = await self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    async def readline(self):
        out = b""
        while not out.endswith(b"\n"):
            c = await self.read(1)
            if not c:
                break
            out += c
        return out

    def write(self, buf):
        self._check()
        n = _vnet.write(self._h, binascii.hexlify(buf).decode())
        if n < 0:
            raise OSError(-n)

    async def drain(self):
        self._check()
        r = await _vnet.drain(self._h)
        if r < 0:
            raise OSError(-r)

    def close(self):
        if self._h:
            _vnet.close(self._h)
        self._h = 0

    async def wait_closed(self):
        self.close()

    async def aclose(self):
        self.close()

    def get_extra_info(self, name, default=None):
        return default


async def open_connection(host, port, ssl=None, server_hostname=None):
    """(reader, writer) once connected; OSError when the connection is refused, the host does
    not resolve or the Wi-Fi is down. Cancelling it (asyncio.wait_for) drops the half-made
    connection."""
    if ssl:
        raise OSError(_EOPNOTSUPP)  # no ssl module on this MicroPython
    if not network.connected():
        raise OSError(_EHOSTUNREACH)
    h = _vnet.connect(host, port)
    try:
        r = await _vnet.connected(h)
    except BaseException:
        _vnet.close(h)
        raise
    if r < 0:
        _vnet.close(h)
        raise OSError(-r)
    s = Stream(h)
    return s, s
