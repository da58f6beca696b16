"""The firmware's MQTT client on CPython: each case of tests/micropython/scripts/_mqtt_cases.py
(the same cases run on the real MicroPython in tests/micropython/test_mqtt_on_micropython.py)."""
import asyncio

import pytest

from tests.micropython.scripts import _mqtt_cases


@pytest.mark.parametrize("case", _mqtt_cases.CASES, ids=lambda c: c.__name__[5:])
def test_mqtt_client(case):
    asyncio.run(case())
