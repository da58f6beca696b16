"""down/config reassembly's heap on the real MicroPython 1.27 (WebAssembly). Its behaviour, and
the saved file byte for byte, are tested on both interpreters in
tests/firmware/test_config_reassembly.py."""
from __future__ import annotations

import re

import pytest

from tests.micropython.test_on_micropython import SCRIPTS, checks, run_mp

pytestmark = pytest.mark.micropython


def test_config_reassembly_does_not_grow_the_heap():
    mp = run_mp(SCRIPTS / "config_heap.py")
    checks(mp, 2)
    growth = re.search(r"config heap growth: (-?\d+) bytes", mp.stdout)
    assert growth and int(growth.group(1)) < 4096
