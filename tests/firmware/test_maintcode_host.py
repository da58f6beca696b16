"""The maintenance code against CPython's hmac at random (the fixed vectors and the console run
on both interpreters: test_maintcode.py)."""
import hashlib
import hmac
import os

import pytest

from firmware import maintcode

ON_MICROPYTHON = False  # CPython's hmac is the reference
KEY = bytes(range(1, 33))
NOW = 1795426600


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
