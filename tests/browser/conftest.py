"""Playwright driving Debian's chromium (/usr/bin/chromium) against a real API server."""
from __future__ import annotations

import os

import pytest


CHROMIUM = os.environ.get("TELEGEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """One chromium for a module's tests on a test process (each test opens its own page, a
    context of its own: no cookie or storage crosses): a launch with its Playwright driver is
    0.7 s of CPU, 50 tests. pytest ends it before the next module's tests, so no other test
    runs while Playwright's loop is set up."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-deps.sh (apt chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
