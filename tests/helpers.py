"""Helpers shared by the e2e, chaos and postgres tests (real broker, real worker process) and by
the tests of the printed badge sheets (the PDF's images and text)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import sqlalchemy as sa

from tools.sim.reader import VirtualReader
from tools.sim.run import configs_from_db

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tools" / "micropython" / "run_mp.mjs"
PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
# how long a service a test starts (`telegest fleet api`...) may take to listen: its start
# costs a few seconds of CPU, many more when the suite runs side by side on a loaded machine.
# A bound, not a figure: a service that is ready goes on at once.
READY_S = 120


def run_mp(script: Path, *runner_args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run a script on the real MicroPython (WebAssembly under Node, tools/micropython/run_mp.mjs);
    fail (never skip) when the toolchain is missing."""
    import shutil

    import pytest

    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: install Node.js, then run `npm ci` at the repo root")
    if not (PACKAGE / "micropython.mjs").exists():
        pytest.fail(f"{PACKAGE} is missing: run `npm ci` at the repo root")
    return subprocess.run([node, str(RUNNER), str(script), *runner_args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


class WorkerProcess:
    """`telegest fleet worker` as a child process, so a test can SIGKILL it mid-batch."""

    def __init__(self, db_url: str, host: str, port: int, log_path: Path,
                 protocol: str = "v5", env: dict[str, str] | None = None) -> None:
        self.env = env or {}  # more TELEGEST_* settings (e.g. the test's SMTP server)
        self.argv = [sys.executable, "-m", "tools.cli", "fleet", "worker", "--db", db_url,
                     "--broker", f"{host}:{port}", "--protocol", protocol]
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "TELEGEST_LOG_LEVEL": "INFO", **self.env})
        log.close()
        return self

    def wait_ready(self, timeout: float = 30.0) -> "WorkerProcess":
        """Until the worker says its subscriptions are made (it logs 'subscribed')."""
        wait_until(lambda: "subscribed" in self.log() or not self.alive(), timeout,
                   what="the worker to subscribe")
        assert self.alive(), self.log()[-2000:]
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def telegest(*argv: str, timeout: float = 120,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`telegest ARGV...` run as a user would, from this checkout, with `env` added to the
    environment; its output captured."""
    return subprocess.run([sys.executable, "-m", "tools.cli", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env} if env else None)


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition",
               why=None):
    """`why`: called at a timeout, what is still missing (said instead of the last value)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} "
                         f"({why() if why else f'last: {last!r}'})")


def stored_seqs(db_url: str, device_ident: str) -> list[int]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as c:
            rows = c.execute(sa.text(
                "SELECT e.seq FROM clock_events e JOIN devices d ON d.id = e.device_id "
                "WHERE d.ident = :ident ORDER BY e.id"), {"ident": device_ident})
            return [r[0] for r in rows]
    finally:
        engine.dispose()


def count_events(db_url: str) -> tuple[int, int]:
    """(rows, distinct (device, seq)) in clock_events."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as c:
            rows = c.execute(sa.text("SELECT count(*) FROM clock_events")).scalar_one()
            distinct = c.execute(sa.text(
                "SELECT count(*) FROM (SELECT DISTINCT device_id, seq FROM clock_events) d"
            )).scalar_one()
            return int(rows), int(distinct)
    finally:
        engine.dispose()


def planned_now(config: dict) -> tuple[int, str]:
    """A visit of this home whose start is within the tolerance of now: (visit id, badge)."""
    now, tol = int(time.time()), config["tolerance_min"] * 60
    for visit_id, badge, start, end in config["visits"]:
        if start - tol <= now <= start + tol:
            return visit_id, badge
    raise AssertionError(f"the demo planning has no visit starting now: {config['visits']}")


def reader_for(db_url, broker, tmp_path, ident="demo-r1", **kw) -> VirtualReader:
    config = configs_from_db(db_url, [ident])[ident]
    return VirtualReader(ident, broker.host, broker.port, tmp_path / "flash" / ident, config,
                         ack_timeout=kw.pop("ack_timeout", 2.0), **kw)


def find_device_with_visit_now(db_url):
    configs = configs_from_db(db_url, None)
    for ident, cfg in configs.items():
        try:
            return ident, cfg, planned_now(cfg)
        except AssertionError:
            continue
    raise AssertionError("no demo reader has a visit starting now")


def pdf_images_and_text(pdf: bytes) -> tuple[list[bytes], bytes]:
    """The PDF's images (8-bit gray pixels, row by row) and its page content streams, as fpdf2
    writes them: a QR code image compares to `tools.field.sheet.qr_image(token).tobytes()`."""
    images, text = [], b""
    for m in re.finditer(rb"\d+ 0 obj\n<<(.*?)>>\nstream\n", pdf, re.S):
        head = m.group(1)
        length = int(re.search(rb"/Length (\d+)", head).group(1))
        stream = pdf[m.end():m.end() + length]
        data = zlib.decompress(stream) if b"/FlateDecode" in head else stream
        if b"/Subtype /Image" in head:
            w = int(re.search(rb"/Width (\d+)", head).group(1))
            h = int(re.search(rb"/Height (\d+)", head).group(1))
            images.append(_png_unfilter(data, w, h))
        else:
            text += data
    return images, text


def _png_unfilter(raw: bytes, width: int, height: int) -> bytes:
    """PNG predictors (the PDF's /Predictor 15), one gray byte a pixel."""
    out, prev = bytearray(), bytearray(width)
    for r in range(height):
        kind, line = raw[r * (width + 1)], bytearray(raw[r * (width + 1) + 1:(r + 1) * (width + 1)])
        for i in range(width):
            a = line[i - 1] if i else 0
            b, c = prev[i], prev[i - 1] if i else 0
            p = a + b - c
            pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2,
                    4: min((abs(p - a), a), (abs(p - b), b), (abs(p - c), c))[1]}[kind]
            line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    return bytes(out)


def unstarted_visit(session, minutes_ago: int = 20):
    """A new visit of the first demo pair (client, caregiver) planned yesterday to start
    `minutes_ago` minutes ago, for an hour, with nobody clocked in (flushed, not committed)."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import select

    from fleet.models import Visit

    demo = session.scalars(select(Visit).order_by(Visit.id)).first()
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(
        minutes=minutes_ago)
    visit = Visit(organisation_id=demo.organisation_id, client_id=demo.client_id,
                  caregiver_id=demo.caregiver_id, planned_start=start,
                  planned_end=start + timedelta(hours=1),
                  created_at=start - timedelta(days=1))
    session.add(visit)
    session.flush()
    return visit


def pdf_text_runs(pdf: bytes) -> list[tuple[str, float, float, float, str]]:
    """The text shown on the pages as fpdf2 writes it with embedded TrueType fonts: (font
    base name, size in pt, x, y in pt from the bottom-left, text), the text decoded through
    each font's ToUnicode map (a glyph the font lacks would be missing or come back as '?')."""
    objs: dict[int, tuple[bytes, bytes]] = {}
    for m in re.finditer(rb"(\d+) 0 obj\n<<(.*?)>>\n(stream\n)?", pdf, re.S):
        head, data = m.group(2), b""
        if m.group(3):
            length = int(re.search(rb"/Length (\d+)", head).group(1))
            data = pdf[m.end():m.end() + length]
            if b"/FlateDecode" in head:
                data = zlib.decompress(data)
        objs[int(m.group(1))] = (head, data)
    fonts: dict[bytes, tuple[str, dict[int, str]]] = {}
    for head, _ in objs.values():
        for name, ref in re.findall(rb"/(F\d+) (\d+) 0 R", head):
            fhead = objs[int(ref)][0]
            base = re.search(rb"/BaseFont /(?:[A-Z]{6}\+)?(\S+)", fhead).group(1).decode()
            cmap = {}
            tu = re.search(rb"/ToUnicode (\d+) 0 R", fhead)
            if tu:
                cmap_text = objs[int(tu.group(1))][1]
                for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap_text, re.S):
                    for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                        cmap[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
                for block in re.findall(rb"beginbfrange(.*?)endbfrange", cmap_text, re.S):
                    for a, b, dst in re.findall(
                            rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                        start = int(dst, 16)
                        for k, cid in enumerate(range(int(a, 16), int(b, 16) + 1)):
                            cmap[cid] = chr(start + k)
            fonts[name] = (base, cmap)
    runs = []
    font, size = None, 0.0
    for head, data in objs.values():
        if b"/Subtype" in head or b"/Length1" in head or not re.search(rb"\bBT\b", data):
            continue
        shown = rb"/(F\d+) ([\d.]+) Tf|([\d.-]+) ([\d.-]+) Td \(((?:\\.|[^\\)])*)\) Tj"
        for m in re.finditer(shown, data, re.S):
            if m.group(1):
                font, size = fonts[m.group(1)], float(m.group(2))
                continue
            raw = _pdf_unescape(m.group(5))
            cids = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
            text = "".join(font[1].get(c, "?") for c in cids)
            runs.append((font[0], size, float(m.group(3)), float(m.group(4)), text))
    return runs


def _pdf_unescape(s: bytes) -> bytes:
    """A PDF literal string's bytes (backslash escapes, octal included)."""
    out, i = bytearray(), 0
    table = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12}
    while i < len(s):
        c = s[i]
        if c == 0x5C and i + 1 < len(s):
            n = s[i + 1]
            if n in table:
                out.append(table[n])
                i += 2
            elif 0x30 <= n <= 0x37:
                j = i + 1
                while j < len(s) and j < i + 4 and 0x30 <= s[j] <= 0x37:
                    j += 1
                out.append(int(s[i + 1:j], 8) & 0xFF)
                i = j
            else:
                out.append(n)
                i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def micropython_image() -> bytes:
    """A well-formed ESP32 application image (header, segments, checksum, SHA-256), as the
    flash checks expect of MicroPython's ESP32_GENERIC .bin."""
    from esptool.bin_image import ESP32FirmwareImage, ImageSegment

    img = ESP32FirmwareImage()
    img.entrypoint = 0x40080000
    segs = [ImageSegment(0x3FFB0000, bytes(256)), ImageSegment(0x40080000, os.urandom(16384))]
    for i, s in enumerate(segs):
        s.name = f".seg{i}"
    img.segments = segs
    img.append_digest = True
    return img.save(None)


class FakeClock:
    """A monotonic clock the test moves by hand (`clock.t += 60`)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t



def worker_database_url(url: str, worker: str | None = None) -> str:
    """The PostgreSQL database of this pytest-xdist worker (`worker`, default
    PYTEST_XDIST_WORKER): `url`'s database name + "_gw0" (…), on the same server, created with
    CREATE DATABASE when absent. Outside xdist, `url` itself."""
    worker = os.environ.get("PYTEST_XDIST_WORKER") if worker is None else worker
    if not worker:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ProgrammingError

    base = make_url(url)
    name = f"{base.database}_{worker}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            exists = c.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": name})
            quoted = c.dialect.identifier_preparer.quote_identifier(name)
            try:
                if not exists:
                    c.exec_driver_sql(f"CREATE DATABASE {quoted}")
            except ProgrammingError as e:  # made meanwhile by another run: fine
                if getattr(e.orig, "sqlstate", None) != "42P04":  # duplicate_database
                    raise
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)
