"""The update path on the real MicroPython 1.27 (WebAssembly): the pure-Python Ed25519 verify
(timed, within a small heap), a host-signed bundle fetched and checked, a tampered one and a
bad signature refused, the switch, the slot's package imported after the "reboot", rollback;
then the minimum version kept in flash across reboots (issue #14 item 9): an older signed
bundle, an expired offer and one for another channel refused."""
from __future__ import annotations

import base64
import re
import shutil

import pytest

from tests.helpers import run_mp
from tests.micropython.test_on_micropython import SCRIPTS, checks
from tests.updates.bundles import PUB, offer, signed, wire_files

pytestmark = pytest.mark.micropython


def write_data(path, files=None):
    b = signed("0.2.0", files)
    good = offer(b)
    bad = dict(good)
    sig = bytearray(base64.b64decode(good["osig"]))
    sig[3] ^= 1
    bad["osig"] = base64.b64encode(bytes(sig)).decode()
    wire = wire_files(b)
    tampered = list(wire)
    tampered[2] = tampered[2][:-1] + b"X"
    older = offer(signed("0.1.5"), id=10)  # signed, valid, but older than what was confirmed
    expired = offer(b, id=11, exp=1_799_999_999)  # the script's clock says 1_800_000_000
    beta = offer(b, id=12, ch="beta")
    path.write_text(f"PUB = {PUB!r}\nOFFER = {good!r}\nOFFER_BAD_SIG = {bad!r}\n"
                    f"FILES = {wire!r}\nTAMPERED = {tampered!r}\nOLDER = {older!r}\n"
                    f"EXPIRED = {expired!r}\nBETA = {beta!r}\n")


def run(tmp_path, heapsize: int):
    for name in ("ota.py", "_check.py"):
        shutil.copy(SCRIPTS / name, tmp_path / name)
    from tests.updates.bundles import files_for
    files = files_for("0.2.0")
    # the slot's package: a whole firmware package would be the real thing; the updater
    # modules are enough to import from the slot after the switch
    from pathlib import Path
    fw = Path(__file__).resolve().parents[2] / "firmware"
    for rel in ("ota/__init__.py", "ota/updater.py", "ota/ed25519.py"):
        files["firmware/" + rel] = (fw / rel).read_bytes()
    write_data(tmp_path / "_ota_data.py", files)
    return run_mp(tmp_path / "ota.py", "--heapsize", str(heapsize))


def test_update_path_on_micropython_in_a_32_kib_heap(tmp_path):
    proc = run(tmp_path, 32 * 1024)  # a third of a plain ESP32's Python heap
    checks(proc, 23)
    t = int(re.search(r"ed25519 verify: (\d+) ms", proc.stdout).group(1))
    print(f"ed25519 verify on MicroPython (WebAssembly): {t} ms")
    assert t < 5000
