"""down/config reassembly (firmware/config.py) on the real MicroPython 1.27 (WebAssembly):
the same script runs on CPython, and the saved config file is byte-identical on both."""
from __future__ import annotations

import re

import pytest

from tests.micropython.test_on_micropython import SCRIPTS, checks, run_cpython, run_mp

pytestmark = pytest.mark.micropython


def test_config_reassembly_on_micropython_and_cpython():
    mp, cp = run_mp(SCRIPTS / "config.py"), run_cpython(SCRIPTS / "config.py")
    checks(mp, 20)
    checks(cp, 20)
    saved = [[ln for ln in p.stdout.splitlines() if ln.startswith("BYTES ")] for p in (mp, cp)]
    assert saved[0] and saved[0] == saved[1]
    growth = re.search(r"config heap growth: (-?\d+) bytes", mp.stdout)
    assert growth and int(growth.group(1)) < 4096
