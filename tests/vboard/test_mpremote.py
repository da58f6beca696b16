"""mpremote (files, exec, run, soft reset, errors) against the virtual board."""
from __future__ import annotations

import json
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.vboard.helpers import ROOT, mpremote, ok

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(60)]



def test_exec_with_plain_mpremote(board):
    assert ok(mpremote(board, "exec", "print(1+1)", plain=True)).strip() == "2"


def test_eval_sees_micropython(board):
    out = ok(mpremote(board, "exec", "import sys", "+", "eval", "sys.implementation.name",
                      "+", "eval", "1<<40"))
    assert out.split() == ["micropython", "1099511627776"]


def test_copy_cat_and_list(board, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_text("bonjour\n")
    ok(mpremote(board, "fs", "cp", str(src), ":/flash/hello.txt", plain=True))
    assert ok(mpremote(board, "fs", "cat", "/flash/hello.txt", plain=True)) == "bonjour\n"
    listing = ok(mpremote(board, "fs", "ls", "/flash", plain=True))
    assert "hello.txt" in listing


def test_binary_round_trip_and_sha256(board, tmp_path):
    data = os.urandom(20_000) + bytes(range(256))
    src, back = tmp_path / "blob.bin", tmp_path / "back.bin"
    src.write_bytes(data)
    ok(mpremote(board, "fs", "cp", str(src), ":/flash/blob.bin"))
    out = ok(mpremote(board, "fs", "sha256sum", "/flash/blob.bin"))
    assert hashlib.sha256(data).hexdigest() in out
    ok(mpremote(board, "fs", "cp", ":/flash/blob.bin", str(back)))
    assert back.read_bytes() == data
    size = ok(mpremote(board, "exec", "import os; print(os.stat('/flash/blob.bin')[6])"))
    assert int(size) == len(data)


def test_mkdir_tree_and_rm(board, tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("B = 2\n")
    ok(mpremote(board, "fs", "cp", "-r", str(tmp_path / "pkg"), ":/flash/"))
    tree = ok(mpremote(board, "fs", "tree", "/flash"))
    assert "a.py" in tree and "b.py" in tree
    ok(mpremote(board, "fs", "rm", "-r", "/flash/pkg"))
    assert ok(mpremote(board, "exec", "import os; print(os.listdir('/flash'))")).strip() == "[]"


def test_missing_file_is_enoent(board):
    proc = mpremote(board, "fs", "cat", "/flash/nope")
    assert proc.returncode != 0
    assert "No such file or directory" in proc.stdout + proc.stderr
    proc = mpremote(board, "exec", "open('/flash/nope')")
    assert "OSError: [Errno 2] ENOENT" in proc.stdout + proc.stderr


def test_run_script(board, tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import sys\nfor i in range(3):\n    print('tick', i)\nprint(sys.platform)\n")
    out = ok(mpremote(board, "run", str(script)))
    assert out.split("\n")[:4] == ["tick 0", "tick 1", "tick 2", "webassembly"]


def test_traceback_comes_back(board):
    proc = mpremote(board, "exec", "def f():\n    1/0\nf()")
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    assert "Traceback (most recent call last):" in text
    assert 'line 2, in f' in text and "ZeroDivisionError: divide by zero" in text


def test_soft_reset_clears_ram_keeps_files(board):
    ok(mpremote(board, "exec", "x = 5; open('/flash/kept', 'w').write('yes')"))
    # mpremote soft-resets the board the first time it enters the raw REPL, unless `resume`.
    assert ok(mpremote(board, "resume", "exec", "print('x' in globals())")).strip() == "True"
    out = ok(mpremote(board, "resume", "soft-reset", "exec",
                      "print('x' in globals(), open('/flash/kept').read())"))
    assert out.strip() == "False yes"


def test_boot_py_runs_on_soft_reset(board, tmp_path):
    boot = tmp_path / "boot.py"
    boot.write_text("booted = 42\n")
    ok(mpremote(board, "fs", "cp", str(boot), ":/boot.py"))
    assert ok(mpremote(board, "soft-reset", "exec", "print(booted)")).strip() == "42"


def test_without_raw_paste_mpremote_falls_back(start_board, tmp_path):
    board = start_board(raw_paste=False)
    data = os.urandom(3000)
    (tmp_path / "b.bin").write_bytes(data)
    ok(mpremote(board, "fs", "cp", str(tmp_path / "b.bin"), ":/flash/b.bin"))
    out = ok(mpremote(board, "fs", "sha256sum", "/flash/b.bin", "+", "exec", "print(6*7)"))
    assert hashlib.sha256(data).hexdigest() in out and out.strip().endswith("42")


def test_root_persists_flash_between_runs(start_board, tmp_path):
    host = tmp_path / "flash"
    host.mkdir()
    (host / "from_host.txt").write_text("host\n")
    board = start_board(root=host)
    assert ok(mpremote(board, "fs", "cat", "/flash/from_host.txt")) == "host\n"
    ok(mpremote(board, "exec", "open('/flash/from_board.txt', 'w').write('board')\n"
                               "import os; os.remove('/flash/from_host.txt')"))
    board.stop()
    assert sorted(p.name for p in host.iterdir()) == ["from_board.txt"]
    again = start_board(root=host)
    assert ok(mpremote(again, "fs", "cat", "/flash/from_board.txt")) == "board"


def test_injected_machine_shim(start_board):
    board = start_board(inject=True)
    out = ok(mpremote(board, "exec",
                      "import machine\np = machine.Pin(2, machine.Pin.OUT)\np.on()\n"
                      "u = machine.UART(1, 9600)\nu.rx.extend(b'ok')\n"
                      "print(p.value(), u.write(b'abc'), bytes(u.tx), u.read(), machine.unique_id())"))
    assert out.strip() == "1 3 b'abc' b'ok' b'vboard'"


def _stage_firmware(dest: Path) -> Path:
    """firmware/ and its subpackages, .py files only, as they go onto the reader box."""
    src = ROOT / "firmware"
    stage = dest / "firmware"
    for path in src.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        target = stage / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return stage


def test_deploy_firmware_and_use_the_journal(board, tmp_path):
    stage = _stage_firmware(tmp_path)
    ok(mpremote(board, "fs", "cp", "-r", str(stage), ":/lib/", timeout=60))
    on_board = ok(mpremote(board, "exec", "import os; print(sorted(os.listdir('/lib/firmware')))"))
    assert "'journal.py'" in on_board and "'runtime'" in on_board
    code = ("from firmware.journal import Journal\n"
            "j = Journal('/flash/journal')\n"
            "print(j.append(b'{\"badge\":\"04A1\"}'), j.append(b'{\"badge\":\"04B2\"}'))\n"
            "print(j.read_from(1, 10))\n")
    out = ok(mpremote(board, "exec", code)).splitlines()
    assert out == ["1 2", "[(1, b'{\"badge\":\"04A1\"}'), (2, b'{\"badge\":\"04B2\"}')]"]
    # After a soft reset the journal is rebuilt from flash.
    out = ok(mpremote(board, "soft-reset", "exec",
                      "from firmware.journal import Journal\n"
                      "j = Journal('/flash/journal')\nprint(j.last_seq, j.read_from(2, 10))"))
    assert out.strip() == "2 [(2, b'{\"badge\":\"04B2\"}')]"


def test_a_simulated_tap_is_journaled_on_the_board(board, tmp_path):
    """The firmware deployed by mpremote decides and journals a tap on the board itself."""
    stage = _stage_firmware(tmp_path)
    ok(mpremote(board, "fs", "cp", "-r", str(stage), ":/lib/", timeout=60))
    code = (
        "import time\n"
        "from firmware.journal import Journal\n"
        "from firmware.planning import Planning\n"
        "from firmware.reader import ReaderCore\n"
        "class Clock:\n"
        "    def time(self): return 1795426549\n"
        "    def quality(self): return 'rtc'\n"
        "cfg = {'version': 1, 'tz': 'UTC', 'tolerance_min': 30, 'badges': ['04A1B2C3D4E5F6'],\n"
        "       'visits': [[7, '04A1B2C3D4E5F6', 1795426500, 1795430100]]}\n"
        "core = ReaderCore('vb-1', Journal('/flash/tapjournal'), Planning.from_config(cfg),"
        " Clock())\n"
        "print(core.tap('04A1B2C3D4E5F6'), core.journal.depth)\n"
        "print(core.outgoing(1795426549)[0][1].decode())\n")
    out = ok(mpremote(board, "exec", code)).splitlines()
    assert out[0] == "in 1"
    batch = json.loads(out[1])
    assert batch["events"] == [{"seq": 1, "badge": "04A1B2C3D4E5F6", "dir": "in",
                                "method": "nfc", "ts": 1795426549, "tq": "rtc", "visit": 7}]
