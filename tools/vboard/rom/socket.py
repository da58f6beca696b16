# socket for the virtual box (tools/vboard/vboard.mjs --box): TCP streams bridged to Node's
# `net` through the bridge's I/O thread (tools/vboard/netbridge.mjs). Blocking semantics
# as on the ESP32 port: settimeout(None) blocks, settimeout(0)/setblocking(False) returns at
# once (read -> None, recv -> OSError EAGAIN), settimeout(t) raises OSError(ETIMEDOUT) after
# t. A socket needs the WLAN station connected, as on a box (EHOSTUNREACH otherwise).
# No UDP, no listening sockets: the firmware opens only TCP clients.
import binascii
import errno

import _vbox
import network

AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
IPPROTO_TCP = 6
IPPROTO_UDP = 17
SOL_SOCKET = 1
SO_REUSEADDR = 4
TCP_NODELAY = 1

_FOREVER_MS = 3600000  # "blocking": re-asked every hour, so a stuck peer never wedges the bridge
_EAGAIN = getattr(errno, "EAGAIN", 11)
_ETIMEDOUT = getattr(errno, "ETIMEDOUT", 110)
_ENOTCONN = getattr(errno, "ENOTCONN", 107)
_EHOSTUNREACH = getattr(errno, "EHOSTUNREACH", 113)


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    if not network.connected():
        raise OSError(-202)  # what the ESP32 port raises for a failed lookup
    ip = _vbox.resolve(host)
    if not ip:
        raise OSError(-202)
    return [(AF_INET, SOCK_STREAM, IPPROTO_TCP, "", (ip, port))]


class socket:
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=IPPROTO_TCP):
        if type != SOCK_STREAM:
            raise OSError(95)  # EOPNOTSUPP: the virtual box has TCP only
        self._h = 0
        self._timeout = None  # None: blocking
        self._closed = False

    def settimeout(self, t):
        self._timeout = t

    def setblocking(self, flag):
        self._timeout = None if flag else 0

    def setsockopt(self, *args):
        pass

    def _wait_ms(self):
        t = self._timeout
        return _FOREVER_MS if t is None else int(t * 1000)

    def connect(self, addr):
        if self._closed:
            raise OSError(errno.EBADF)
        if not network.connected():
            raise OSError(_EHOSTUNREACH)
        host, port = addr[0], addr[1]
        ms = self._wait_ms()
        r = _vbox.connect(host, port, 10000 if ms == 0 or ms == _FOREVER_MS else ms)
        if r < 0:
            raise OSError(-r)
        self._h = r

    def _check(self):
        if not self._h:
            raise OSError(_ENOTCONN)
        if not network.connected():  # the Wi-Fi went: the stream is dead
            self.close()
            raise OSError(_ENOTCONN)

    def send(self, data):
        self._check()
        n = _vbox.send(self._h, binascii.hexlify(data).decode())
        if n < 0:
            raise OSError(-n)
        return n

    write = send

    def sendall(self, data):
        self.send(data)

    def _recv(self, n):
        """bytes (b"" at EOF), or None when nothing came within the timeout."""
        self._check()
        while True:
            ms = self._wait_ms()
            r = _vbox.recv(self._h, n, ms)
            if type(r) is not int:
                return bytes(r)
            if r == -_ETIMEDOUT:
                if self._timeout is None:
                    continue
                return None
            raise OSError(-r)

    def recv(self, n):
        data = self._recv(n)
        if data is None:
            raise OSError(_EAGAIN if self._timeout == 0 else _ETIMEDOUT)
        return data

    def read(self, n=None):
        """Up to n bytes (as MicroPython's stream read: keeps reading until n or EOF when
        blocking); None when a non-blocking socket has nothing."""
        if n is None:
            n = 4096
        out = b""
        while len(out) < n:
            try:
                data = self._recv(n - len(out))
            except OSError:
                if out:
                    return out
                raise
            if data is None:
                if out:
                    return out
                if self._timeout == 0:
                    return None
                raise OSError(_ETIMEDOUT)
            if not data:
                break
            out += data
            if self._timeout == 0:
                break
        return out

    def readinto(self, buf, n=None):
        n = len(buf) if n is None else n
        data = self.read(n)
        if data is None:
            return None
        buf[:len(data)] = data
        return len(data)

    def readline(self):
        out = b""
        while not out.endswith(b"\n"):
            c = self.read(1)
            if not c:
                break
            out += c
        return out

    def close(self):
        if self._h:
            _vbox.close(self._h)
        self._h = 0
        self._closed = True

    def fileno(self):
        return self._h

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
