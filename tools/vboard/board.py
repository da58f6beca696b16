"""Start and stop the virtual board (tools/vboard/vboard.mjs) from Python.

    with VirtualBoard() as board:
        subprocess.run(["mpremote", "connect", board.url, "exec", "print(1+1)"])
"""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tools.errors import TelegestError

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = Path(__file__).resolve().parent / "vboard.mjs"
PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"


class VirtualBoardError(TelegestError):
    pass


def check_toolchain(node: str | None = None, package: Path = PACKAGE) -> str:
    """The node executable to use; raises VirtualBoardError saying what to install."""
    node = node or shutil.which("node")
    if not node or not (os.path.isfile(node) and os.access(node, os.X_OK)):
        raise VirtualBoardError(
            "node is not installed: install Node.js 20, then run `npm ci` at the repo root")
    if not (package / "micropython.mjs").is_file():
        raise VirtualBoardError(
            f"{package} is missing: run `npm ci` at the repo root (it installs "
            "@micropython/micropython-webassembly-pyscript)")
    return node


class VirtualBoard:
    """One vboard.mjs process. `port=None` lets the bridge pick a free loopback port.

    root: a host folder mirrored as the board's /flash (copied in at start, out when a client
    disconnects, on soft reset and on stop). inject: install a `machine` shim in /lib.
    raw_paste=False makes the board refuse raw-paste mode, as older firmware does.

    box=True makes it the reader box (docs/virtual-board.md, "The virtual reader box"): the
    stand-ins for machine, network, socket and ntptime, asyncio.open_connection bridged to
    Node's `net` (rom/_vboxnet.py), with the virtual
    access point `ap` = (ssid, password), `uarts` = {uart id: (host, port)} wired to
    simulators (the PN532 simulator's TCP port), and `unique_id` (hex) for machine.unique_id().
    install: a host folder laid on the board's / before the first boot (the firmware and its
    settings.json, as `telegest device sim --board wasm` prepares them).
    """

    def __init__(self, port: int | None = None, *, root: str | os.PathLike | None = None,
                 inject: bool = False, raw_paste: bool = True, node: str | None = None,
                 start_timeout: float = 15.0, box: bool = False,
                 ap: tuple[str, str] | None = None,
                 uarts: dict[int, tuple[str, int]] | None = None,
                 unique_id: str | None = None, install: str | os.PathLike | None = None):
        self.port = port
        self.root = Path(root) if root is not None else None
        self.inject = inject
        self.raw_paste = raw_paste
        self.box = box
        self.ap = ap
        self.uarts = dict(uarts or {})
        self.unique_id = unique_id
        self.install = Path(install) if install is not None else None
        self.node = node
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr = None

    @property
    def url(self) -> str:
        if self.port is None or self.proc is None:
            raise VirtualBoardError("the virtual board is not started")
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> VirtualBoard:
        node = check_toolchain(self.node)
        cmd = [node, str(BRIDGE), str(self.port or 0)]
        if self.root is not None:
            cmd += ["--root", str(self.root)]
        if self.inject:
            cmd.append("--inject")
        if not self.raw_paste:
            cmd.append("--no-raw-paste")
        if self.box:
            cmd.append("--box")
            if self.ap is not None:
                cmd += ["--ap", self.ap[0], "--ap-password", self.ap[1]]
            for uart, (host, port) in sorted(self.uarts.items()):
                cmd += ["--uart", f"{uart}={host}:{port}"]
            if self.unique_id:
                cmd += ["--unique-id", self.unique_id]
        if self.install is not None:
            cmd += ["--install", str(self.install)]
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr)
        line = self._first_line()
        if not line.startswith(b"listening "):
            err = self._errors()
            self.stop()
            raise VirtualBoardError(f"the virtual board did not start: {line!r} {err}".strip())
        self.port = int(line.split()[1])
        return self

    def _first_line(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return buf + b" (timed out)"
            chunk = os.read(fd, 256)
            if not chunk:
                return buf
            buf += chunk
        return buf.split(b"\n", 1)[0]

    def _errors(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the bridge writes /flash back to `root`), then SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
