"""Running the real mpremote against a virtual board."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tools.vboard import VirtualBoard

ROOT = Path(__file__).resolve().parents[2]


def mpremote(board: VirtualBoard, *args: str, timeout: float = 30,
             plain: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real mpremote against the board through its socket:// URL.

    plain=True runs `python -m mpremote` itself; otherwise tools.vboard.mpremote_socket, the
    same mpremote with TCP_NODELAY on the socket (much faster file copies).
    """
    if importlib.util.find_spec("mpremote") is None:
        pytest.fail("mpremote is not installed: `.venv/bin/pip install mpremote`")
    module = "mpremote" if plain else "tools.vboard.mpremote_socket"
    return subprocess.run([sys.executable, "-m", module, "connect", board.url, *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout
