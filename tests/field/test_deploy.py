"""`deploy` against the virtual MicroPython board: mpremote's transport, only what changed,
--dry-run, and a cable pulled mid-deploy repaired by running again."""
from __future__ import annotations

import pytest
from mpremote.transport_serial import SerialTransport

from tests.field.conftest import CuttingProxy
from tools.errors import TelegestError
from tools.field.bundle import build_bundle
from tools.field.deploy import MANIFEST, DeployError, deploy

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def bundle():
    return build_bundle()


def board_exec(url: str, code: str) -> str:
    t = SerialTransport(url)
    try:
        t.enter_raw_repl(soft_reset=False)
        return t.exec(code).decode()
    finally:
        t.close()


def test_the_bundle_is_mpy_under_lib_and_entry_points_as_source(bundle):
    dests = {f.dest for f in bundle}
    assert {"/main.py", "/boot.py", "/lib/firmware/__init__.mpy", "/lib/firmware/codec.mpy",
            "/lib/firmware/runtime/console.mpy", "/lib/firmware/drivers/pn532.mpy"} <= dests
    assert not any(d.endswith("manifest.mpy") or d.endswith("main.mpy") for d in dests)
    assert all(f.data[:1] == b"M" for f in bundle if f.dest.endswith(".mpy"))


def test_deploy_copies_then_copies_nothing_and_the_firmware_imports(vboard, bundle):
    seen = []
    first = deploy(vboard.url, bundle=bundle, progress=lambda *a: seen.append(a))
    assert sorted(first.copied) == sorted(f.dest for f in bundle) and first.write_manifest
    assert seen[-1][1] == seen[-1][2]
    second = deploy(vboard.url, bundle=bundle)
    assert second.copy == [] and second.copied == [] and not second.write_manifest
    assert second.unchanged == len(bundle)
    out = board_exec(vboard.url, "import firmware.codec as c\nprint(c.topic('r1', 'up/clock'))\n"
                                 f"print(open({MANIFEST!r}).read())")
    topic, manifest = out.splitlines()[:2]
    assert topic == "tg/v1/r1/up/clock"
    assert '"/lib/firmware/codec.mpy"' in manifest


def test_dry_run_lists_and_writes_nothing(vboard, bundle):
    p = deploy(vboard.url, bundle=bundle, dry_run=True)
    assert len(p.copy) == len(bundle) and p.copied == []
    assert "ENOENT" in board_exec(vboard.url, "import os\ntry:\n os.stat('/main.py')\n"
                                              "except OSError as e:\n print('ENOENT', e)")


def test_a_changed_file_and_a_stale_one_are_handled(vboard, bundle):
    deploy(vboard.url, bundle=bundle)
    board_exec(vboard.url, "f=open('/lib/firmware/codec.py','w'); f.write('X=1'); f.close()\n"
                           "f=open('/main.py','w'); f.write('# edited'); f.close()")
    p = deploy(vboard.url, bundle=bundle)
    assert p.copied == ["/main.py"] and p.deleted == ["/lib/firmware/codec.py"]


def test_a_cable_pulled_mid_deploy_is_repaired_by_running_again(vboard, bundle):
    proxy = CuttingProxy(vboard.port, cut_after=20_000)
    try:
        with pytest.raises(DeployError, match="lost during the deploy .*run deploy again"):
            deploy(proxy.url, bundle=bundle)
    finally:
        proxy.close()
    again = deploy(vboard.url, bundle=bundle)
    assert 0 < len(again.copied) < len(bundle)  # what the first run finished stays
    assert deploy(vboard.url, bundle=bundle).copied == []
    assert ".part" not in board_exec(vboard.url, "import os\nprint(os.listdir('/lib/firmware'))")


def test_a_board_without_micropython_is_explained(esp_sim):
    with pytest.raises(TelegestError, match="does not answer as MicroPython"):
        deploy(esp_sim.url, bundle=[], timeout=1.5)


def test_a_box_running_our_firmware_is_not_told_to_flash(console_server):
    """The firmware holds the port (no raw REPL): deploy says what it is and that flashing
    would erase the clock-ins not yet sent, never "flash MicroPython first"."""
    console_server.unsent(4)
    with pytest.raises(DeployError, match="runs the telegest firmware .*holds 4 clock-ins not "
                                          "yet sent to the fleet, which deploy keeps") as e:
        deploy(console_server.url, bundle=[], timeout=1.5)
    assert "Do not flash it" in str(e.value) and "flash MicroPython first" not in str(e.value)


def test_flash_refuses_a_stopped_box_whose_journal_holds_clock_ins(vboard, bundle):
    """Our firmware installed but stopped at the MicroPython prompt: the journal is still on
    flash; the raw REPL opens it with the firmware's own Journal class."""
    from tests.field.images import merged
    from tools.field.flash import flash_image
    from tools.field.inservice import InServiceError, probe

    deploy(vboard.url, bundle=bundle)
    assert probe(vboard.url).unsent == 0
    board_exec(vboard.url, "from firmware.journal import Journal\nj = Journal('/journal')\n"
                           "j.append(b'{}')\nj.append(b'{}')")
    with pytest.raises(InServiceError, match="holds 2 clock-ins not yet sent"):
        flash_image(vboard.url, merged())
    assert board_exec(vboard.url, "import os\nprint(len(os.listdir('/journal')))").strip() != "0"
