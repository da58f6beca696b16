"""Serving a byte-stream simulator as a serial port: on a TCP socket (pyserial's
`socket://127.0.0.1:PORT`) or on a pseudo-terminal. A simulator subclasses `WireSim` and
implements `feed(data) -> reply bytes`; `on_connect()` runs when a new client arrives."""
from __future__ import annotations

import os
import select
import socket
import threading
import tty


class WireSim:
    name = "wire-sim"
    label = "wire"  # "<label> simulator on <where>"
    chunk = 4096
    # True: a second client is hung up on while one is served (a serial server with a client);
    # False: it waits its turn in the listen backlog.
    refuse_second_client = False

    def _init_wire(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closers: list = []
        self._busy = False

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def on_connect(self) -> None:
        pass

    def serve_tcp(self, host: str = "127.0.0.1") -> int:
        """Listen on a free port; one client at a time. Returns the port."""
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, 0))
        srv.listen(4)
        self._closers.append(srv.close)
        self._start(self._accept_loop, srv)
        return srv.getsockname()[1]

    def serve_pty(self) -> str:
        """A pseudo-terminal in raw mode; returns the path pyserial opens."""
        master, slave = os.openpty()
        tty.setraw(slave)
        path = os.ttyname(slave)
        self._closers += [lambda: os.close(master), lambda: os.close(slave)]
        self._start(self._fd_loop, master)
        return path

    def serve_forever(self, pty: bool = False) -> None:
        """For `python -m tools.sim....`: serve, say where, until Ctrl-C."""
        import time

        where = self.serve_pty() if pty else "socket://127.0.0.1:%d" % self.serve_tcp()
        print(self.label, "simulator on", where, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for c in self._closers:
            try:
                c()
            except OSError:
                pass
        self._closers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name=self.name)
        self._threads.append(t)
        t.start()

    def _accept_loop(self, srv: socket.socket) -> None:
        while not self._stop.is_set():
            if not select.select([srv], [], [], 0.05)[0]:
                continue
            conn, _ = srv.accept()
            if not self.refuse_second_client:
                self._conn(conn)
            elif self._busy:
                conn.close()
            else:
                self._busy = True
                self._start(self._conn, conn)

    def _conn(self, conn: socket.socket) -> None:
        try:
            with conn:
                self.on_connect()
                self._serve(conn.recv, conn.sendall, conn)
        finally:
            self._busy = False

    def _fd_loop(self, fd: int) -> None:
        self._serve(lambda n: os.read(fd, n), lambda b: os.write(fd, b), fd)

    def _serve(self, recv, send, waitable) -> None:
        while not self._stop.is_set():
            if not select.select([waitable], [], [], 0.05)[0]:
                continue
            try:
                data = recv(self.chunk)
            except OSError:
                return
            if not data:
                return
            reply = self.feed(data)
            if reply:
                try:
                    send(reply)
                except OSError:
                    return
