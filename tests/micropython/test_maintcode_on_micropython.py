"""The maintenance code (firmware/maintcode.py) and the console's lock on the real MicroPython
1.27 (WebAssembly) and on CPython: its hand-written HMAC-SHA256 against CPython's hmac, a code
issued by CPython checked there, and the console's refusals."""
from __future__ import annotations

import hashlib
import hmac
import os
import shutil

import pytest

from firmware import maintcode
from tests.helpers import run_mp
from tests.micropython.test_on_micropython import SCRIPTS, checks, run_cpython

pytestmark = pytest.mark.micropython

KEY = bytes(range(1, 33))
NOW = 1795426600


@pytest.fixture
def script(tmp_path):
    shutil.copy(SCRIPTS / "_check.py", tmp_path / "_check.py")
    shutil.copy(SCRIPTS / "maint_code.py", tmp_path / "maint_code.py")
    vectors = []
    for n in (0, 1, 31, 32, 64, 65, 200):  # key lengths around the 64-byte block
        key, msg = os.urandom(n), os.urandom(n * 3 + 1)
        vectors.append((key.hex(), msg.hex(), hmac.new(key, msg, hashlib.sha256).hexdigest()))
    (tmp_path / "_vectors.py").write_text(
        f"HMACS = {vectors!r}\nKEY = {KEY.hex()!r}\nIDENT = 'tg-a1b2c3'\nNOW = {NOW}\n"
        f"CODE = {maintcode.issue(KEY, 'tg-a1b2c3', NOW, 4242)[0]!r}\n"
        f"CODE_OTHER = {maintcode.issue(KEY, 'tg-other', NOW, 4242)[0]!r}\n"
        f"CODE_OLD = {maintcode.issue(KEY, 'tg-a1b2c3', NOW - 3600, 1)[0]!r}\n")
    return tmp_path / "maint_code.py"


def test_maintenance_code_checks_on_micropython(script):
    checks(run_mp(script), 25)


def test_maintenance_code_checks_on_cpython(script):
    checks(run_cpython(script), 25)


def test_hmac_matches_cpython_and_a_code_round_trips():
    for n in (0, 16, 64, 100):
        key, msg = os.urandom(n), os.urandom(50)
        assert maintcode.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()
    code, expiry = maintcode.issue(KEY, "tg-x", NOW, 65535)
    assert len(code) == 20 and code[6] == code[13] == "-"
    assert expiry - NOW >= 30 * 60
    assert maintcode.check(KEY, "tg-x", code.replace("-", " ").lower(), NOW) == (expiry, 65535)
    with pytest.raises(ValueError, match="not a maintenance code"):
        maintcode.check(KEY, "tg-x", code[:-1], NOW)
    with pytest.raises(ValueError, match="another box"):
        maintcode.check(bytes(32), "tg-x", code, NOW)
