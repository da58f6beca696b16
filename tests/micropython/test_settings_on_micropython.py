"""The console's `settings` commands (firmware/runtime/console.py, settings.py) on the real
MicroPython 1.27 (WebAssembly) and on CPython: a document the tool encodes
(tools.field.provision.encode) with every awkward character is staged, read back, answered with
the tool's own digest, and committed exactly."""
from __future__ import annotations

import shutil

import pytest

from firmware.runtime.settings import digest
from tests.micropython.test_on_micropython import SCRIPTS, checks, run_cpython
from tests.helpers import run_mp
from tools.field.provision import encode, settings_document

pytestmark = pytest.mark.micropython


def _ca() -> str:
    """A broker CA as `telegest device provision --ca` sends it (PEM, newlines and all)."""
    import tempfile

    from tools import pki

    with tempfile.TemporaryDirectory() as d:
        return pki.read_ca(pki.init_ca(d).ca_cert)


VALUES = settings_document("box-7", "mqtt.example", 8883, "box-7.2",
                           "pw\\\"'; =é€🙂x", ("Box \"Maison\" \\ é", "a\\b\"c'd e;f=gé€🙂"),
                           ca=_ca())


@pytest.fixture
def script(tmp_path):
    for name in ("_check.py", "settings_stage.py"):
        shutil.copy(SCRIPTS / name, tmp_path / name)
    (tmp_path / "_doc.py").write_text(
        "import json\n"
        f"VALUES = json.loads({encode_json(VALUES)!r})\n"
        f"HEX = {encode(VALUES)!r}\n"
        f"DIGEST = {digest(VALUES)!r}\n"
        f"BROKER_DIGEST = {digest(VALUES, ('user', 'pass'))!r}\n", encoding="utf-8")
    return tmp_path / "settings_stage.py"


def encode_json(values: dict) -> str:
    import json

    return json.dumps(values, ensure_ascii=False)


def test_settings_stage_and_commit_on_micropython(script):
    mp = run_mp(script)
    checks(mp, 60)
    assert f"DIGEST {digest(VALUES)}" in mp.stdout


def test_settings_stage_and_commit_on_cpython(script):
    checks(run_cpython(script), 60)
