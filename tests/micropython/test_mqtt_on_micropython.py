"""The firmware's MQTT client on the real MicroPython: every case of
tests/micropython/scripts/_mqtt_cases.py (which pytest also runs on CPython,
tests/runtime/test_mqtt_client.py), with the same fake clock and fake network."""
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_mp
from tests.micropython.scripts import _mqtt_cases
from tests.micropython.test_on_micropython import checks

pytestmark = pytest.mark.micropython

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def test_mqtt_client_cases_on_micropython(tmp_path):
    for name in ("_check.py", "_mqttfake.py", "_mqtt_cases.py"):
        shutil.copy(SCRIPTS / name, tmp_path / name)
    script = tmp_path / "mqtt_client.py"  # top-level await: the runner's runPythonAsync
    script.write_text("import _mqtt_cases\nawait _mqtt_cases.run_all()\n"
                      "print('OK %d checks' % __import__('_check')._n[0])\n")
    proc = run_mp(script)
    checks(proc, 80)
    ran = [line[3:] for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert ran == [c.__name__ for c in _mqtt_cases.CASES]
