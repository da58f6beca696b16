"""Deploy the firmware onto a MicroPython board with mpremote's serial transport (its Python API,
raw REPL and raw-paste mode, no subprocess), copying only what changed.

The board's own files decide what changed: one script run on the board hashes every file under
/lib/firmware and the entry points (sha256). Each file is written to `<dest>.part` and renamed,
so a cut cable leaves whole old files, whole new files and `.part` leftovers; the next run
removes the leftovers and copies what still differs. The manifest /lib/firmware/.deployed.json
(version, sha256 per file) is written last: it records a completed deploy.

A box whose console is locked (it holds a maintenance key) keeps Ctrl-C, hence the REPL, from
its USB port (docs/security.md). Deploy first asks the box's console for its status; when it is
locked, it gets a one-time code from the fleet (`fleet`, audited), enters maintenance mode and
sends `repl`, which lets Ctrl-C through until the box restarts.
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from tools.errors import TelegestError
from tools.field.console import ReaderConsole
from tools.field.bundle import PACKAGE_DIR, BundleFile, build_bundle
from tools.field.ports import open_port

MANIFEST = f"{PACKAGE_DIR}/.deployed.json"
CHUNK = 512
Progress = Callable[[str, int, int], None]  # (file, bytes done, bytes total)

_HASH_SCRIPT = """
import os, hashlib, binascii
def _h(p):
    h = hashlib.sha256()
    b = bytearray(512)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(memoryview(b)[:n])
    return binascii.hexlify(h.digest()).decode()
def _walk(d, out, dirs):
    try:
        it = list(os.ilistdir(d))
    except OSError:
        return
    dirs.append(d)
    for e in it:
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            _walk(p, out, dirs)
        else:
            out[p] = _h(p)
_r, _d = {}, []
_walk(%r, _r, _d)
for _p in ('/main.py', '/boot.py', '/main.py.part', '/boot.py.part'):
    try:
        _r[_p] = _h(_p)
    except OSError:
        pass
print(repr((_r, _d)))
"""


class DeployError(TelegestError):
    pass


@dataclass
class DeployPlan:
    copy: list[BundleFile]
    delete: list[str]
    unchanged: int
    write_manifest: bool
    copied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def bytes_to_copy(self) -> int:
        return sum(len(f.data) for f in self.copy)


def plan(bundle: list[BundleFile], have: dict[str, str], manifest: bytes) -> DeployPlan:
    """What to copy and delete given the board's sha256 per file."""
    wanted = {f.dest: f for f in bundle}
    copy = [f for f in bundle if have.get(f.dest) != f.sha256]
    delete = sorted(p for p in have if p.endswith(".part") or (
        p.startswith(PACKAGE_DIR + "/") and p != MANIFEST and p not in wanted))
    stale_manifest = have.get(MANIFEST) is None or bool(copy or delete) or \
        _sha(manifest) != have.get(MANIFEST)
    return DeployPlan(copy, delete, len(wanted) - len(copy), stale_manifest)


def manifest_bytes(bundle: list[BundleFile], version: str) -> bytes:
    files = {f.dest: f.sha256 for f in bundle}
    return json.dumps({"version": version, "files": files}, sort_keys=True).encode()


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


class Board:
    """The few file operations deploy needs, over mpremote's SerialTransport."""

    def __init__(self, url: str, baud: int = 115200, timeout: float = 10.0):
        self.url = url
        open_port(url, baud, timeout=0.5).close()  # a clear message for missing / busy ports
        try:
            self.t = SerialTransport(url, baudrate=baud)
        except TransportError as e:
            raise DeployError(f"cannot open {url}: {e}") from e
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.t.enter_raw_repl(soft_reset=True, timeout_overall=timeout)
        except (TransportError, serial.SerialException, OSError) as e:
            self.t.close()
            raise DeployError(_no_repl(url)) from e

    def exec(self, code: str) -> bytes:
        return self.t.exec(code)

    def hashes(self) -> tuple[dict[str, str], list[str]]:
        out = self.exec(_HASH_SCRIPT % PACKAGE_DIR).decode()
        files, dirs = ast.literal_eval(out.strip())
        return files, dirs

    def write(self, dest: str, data: bytes, progress: Callable[[int, int], None] | None) -> None:
        part = dest + ".part"
        self.t.fs_writefile(part, data, chunk_size=CHUNK, progress_callback=progress)
        self.exec(f"import os\ntry:\n os.rename({part!r}, {dest!r})\nexcept OSError:\n"
                  f" os.remove({dest!r})\n os.rename({part!r}, {dest!r})")

    def mkdirs(self, dirs: set[str], existing: set[str]) -> None:
        for d in sorted(dirs - existing, key=len):
            self.exec(f"import os\ntry:\n os.mkdir({d!r})\nexcept OSError:\n pass")
            existing.add(d)

    def remove(self, path: str) -> None:
        self.exec(f"import os\nos.remove({path!r})")

    def close(self, reset: bool) -> None:
        try:
            if reset:  # a soft reset in the friendly REPL runs boot.py then main.py
                self.t.exit_raw_repl()
                self.t.serial.write(b"\x04")
                time.sleep(0.1)
            else:
                self.t.exit_raw_repl()
        except (serial.SerialException, OSError):
            pass
        with contextlib.suppress(serial.SerialException, OSError):
            self.t.close()


def _no_repl(url: str) -> str:
    """Why there is no raw REPL, asked of the board itself: advising to flash MicroPython is
    right for a blank board and wrong for a box in service (flashing erases its journal)."""
    from tools.field.inservice import lost, probe

    box = probe(url)
    if box.in_service:
        held = ("its journal is empty" if box.unsent == 0 else
                f"it holds {lost(box)} not yet sent to the fleet, which deploy keeps")
        return (f"the board on {url} runs the telegest firmware ({held}) and did not give "
                "its prompt to deploy (Ctrl-C). Do not flash it: flashing erases the journal. "
                "Tap EN (RST) and run deploy again at once; if it still refuses, see "
                "`telegest device console --raw` for what it prints")
    return (f"the board on {url} does not answer as MicroPython (no raw REPL): flash "
            "MicroPython first (`telegest device flash`), check the baud rate (115200), "
            "or tap EN (RST) and run again")


def unlock(url: str, baud: int = 115200, fleet=None, say=print) -> str:
    """Make Ctrl-C reach the REPL: on a box whose console is locked, a maintenance code from
    `fleet` (a provision.FleetApi) and `repl`. Returns the console's state before: "locked",
    "open", "maintenance", or "none" (no telegest firmware answers: a blank MicroPython board,
    or one at its prompt)."""
    from tools.field.provision import enter_maintenance

    with ReaderConsole(url, baud) as con:
        try:
            status = con.command("status")
        except TelegestError:
            return "none"
        state = status.get("console", "open") if isinstance(status, dict) else "none"
        if state == "open":
            return state
        if state == "locked":
            if fleet is None:
                raise DeployError(
                    f"the box on {url} ({status.get('id')}) has a locked console: Ctrl-C does "
                    "not reach its REPL. Give --fleet and --api-key (or TELEGEST_API_KEY) so "
                    "deploy asks the fleet for a maintenance code")
            enter_maintenance(fleet, con, status["id"], say, reason="telegest device deploy")
        answer = con.ask("repl")
        if answer.startswith("error: "):
            raise DeployError(f"the box on {url} refused `repl`: {answer[7:]}")
        return state


def deploy(url: str, *, baud: int = 115200, dry_run: bool = False, reset: bool = True,
           bundle: list[BundleFile] | None = None, version: str = "dev",
           timeout: float = 10.0, progress: Progress | None = None, fleet=None,
           say=print) -> DeployPlan:
    """Bring the board's firmware in line with `bundle` (the repo's firmware by default).
    `fleet`: a provision.FleetApi, for a code when the box's console is locked (unlock)."""
    bundle = build_bundle() if bundle is None else bundle
    manifest = manifest_bytes(bundle, version)
    unlock(url, baud, fleet, say)
    board = Board(url, baud, timeout)
    p = None
    ok = False
    try:
        have, dirs = board.hashes()
        p = plan(bundle, have, manifest)
        if dry_run:
            return p
        for path in p.delete:
            board.remove(path)
            p.deleted.append(path)
        existing = set(dirs) | {"", "/lib"}
        board.mkdirs({f.dest.rsplit("/", 1)[0] for f in p.copy} | {PACKAGE_DIR}, existing)
        for f in p.copy:
            def step(done: int, total: int, name: str = f.dest) -> None:
                if progress:
                    progress(name, done, total)
            board.write(f.dest, f.data, step)
            p.copied.append(f.dest)
        if p.write_manifest:
            board.write(MANIFEST, manifest, None)
        ok = True
        return p
    except TransportExecError as e:
        raise DeployError(f"the board refused a file operation: {e.error_output.strip()}") from e
    except (TransportError, serial.SerialException, OSError) as e:
        done = f" ({len(p.copied)} of {len(p.copy)} files copied)" if p else ""
        raise DeployError(
            f"the connection to the board on {url} was lost during the deploy{done}: {e}. "
            "Plug the cable back in and run deploy again: it copies only what is missing") from e
    finally:
        board.close(reset and ok and not dry_run)
