"""Playwright driving Debian's chromium (/usr/bin/chromium) against a real API server."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tools.broker import free_port, wait_port

CHROMIUM = os.environ.get("TELEGEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-deps.sh (apt chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def api_server(demo, tmp_path):
    """`telegest fleet api` on a free port, as a user would run it."""
    port = free_port()
    log = open(tmp_path / "api.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "fleet", "api", "--db", demo[0],
                             "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_port("127.0.0.1", port, 30):
            raise AssertionError((tmp_path / "api.log").read_text())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
