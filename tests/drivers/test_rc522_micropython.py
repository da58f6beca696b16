"""The RC522 core and transports on the real MicroPython 1.27 (WebAssembly under Node), against
a tiny register-level fake bus in mp_rc522_check.py. Fails, never skips, when node or the npm
package is missing."""
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


@pytest.mark.micropython
def test_rc522_core_on_micropython():
    node = shutil.which("node")
    assert node, "node is not installed: MicroPython tests need Node.js"
    pkg = ROOT / "node_modules/@micropython/micropython-webassembly-pyscript"
    assert pkg.is_dir(), f"{pkg} is missing: run `npm ci` at the repo root"
    cmd = [node, str(ROOT / "tools/micropython/run_mp.mjs"), str(HERE / "mp_rc522_check.py")]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    assert run.stdout.strip().endswith("ALL OK"), run.stdout
