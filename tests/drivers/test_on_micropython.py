"""The PN532 core and NDEF on the real MicroPython 1.27 (WebAssembly under Node).

Fails, never skips, when node or the npm package is missing.
"""
from pathlib import Path

import pytest

from tests.helpers import run_mp

HERE = Path(__file__).parent


@pytest.mark.micropython
def test_pn532_frames_core_and_ndef_on_micropython():
    run = run_mp(HERE / "mp_drivers_check.py", timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    assert run.stdout.strip().endswith("ALL OK"), run.stdout
