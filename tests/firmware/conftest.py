"""One firmware test suite, two interpreters (docs/testing.md).

Every test of a module here runs twice: `[cpython]` as an ordinary pytest test, and
`[micropython]` (marker `micropython`) on the real MicroPython under Node, where
tests/firmware/runner.py runs the same module's `test_*` functions and reports each one. The
module is run once on MicroPython, at its first `[micropython]` test; each test then reads its
own result. A module that cannot run there (it needs the host: mpy-cross, the fleet's encoder)
says `ON_MICROPYTHON = False` and runs on CPython only.

So a test module here imports no pytest, takes no fixture, and uses tests/firmware/support.py
(raises, tmpdir) and tests/firmware/fakes.py. An `async def` test is awaited on both sides.
"""
from __future__ import annotations

import asyncio
import inspect
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_mp

PACKAGE = "tests/firmware"
TIMEOUT_S = 240  # one module's run on MicroPython
_results: dict[str, dict[str, tuple[bool, str]]] = {}


@pytest.fixture(autouse=True)
def interpreter(request):
    return getattr(request, "param", "cpython")


def pytest_generate_tests(metafunc):
    if getattr(metafunc.module, "ON_MICROPYTHON", True):
        metafunc.parametrize("interpreter", [
            "cpython", pytest.param("micropython", marks=pytest.mark.micropython)],
            indirect=True)


def parse(stdout: str) -> dict[str, tuple[bool, str]]:
    """The runner's report: {test name: (passed, traceback)}; key '' when the module did not
    import (micropython_results also puts there why a run stopped short)."""
    out: dict[str, tuple[bool, str]] = {}
    current, lines = None, []
    for line in stdout.splitlines():
        m = re.fullmatch(r"@@TEST (\w+) (ok|fail)", line)
        if current is not None:
            if line == "@@END":
                out[current] = (False, "\n".join(lines))
                current, lines = None, []
            else:
                lines.append(line)
        elif m and m.group(2) == "ok":
            out[m.group(1)] = (True, "")
        elif m:
            current = m.group(1)
        elif line == "@@IMPORT fail":
            current = ""
    return out


def micropython_results(path: Path) -> dict[str, tuple[bool, str]]:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if module not in _results:
        with tempfile.TemporaryDirectory(prefix="tg-fw-mp-") as tmp:
            driver = Path(tmp) / "driver.py"
            driver.write_text(f"from tests.firmware.runner import run\nawait run({module!r})\n")
            try:
                proc = run_mp(driver, "--package", PACKAGE, timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired as e:  # a test that never returns: said once
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ""
                _results[module] = {"": (False, f"not finished within {TIMEOUT_S} s; "
                                             f"the last results:\n{out[-2000:]}")}
                return _results[module]
        results = parse(proc.stdout)
        if "@@DONE" not in proc.stdout and "" not in results:
            started = re.findall(r"^@@START (\w+)$", proc.stdout, re.M)
            why = ("never returned: an await that nothing wakes (Node exits 13)"
                   if proc.returncode == 13 else f"stopped the run (exit {proc.returncode})")
            where = f"{started[-1]} {why}" if started else f"the run stopped ({why})"
            results[""] = (False, f"{where}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        _results[module] = results
    return _results[module]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    callspec = getattr(pyfuncitem, "callspec", None)
    if callspec is not None and callspec.params.get("interpreter") == "micropython":
        results = micropython_results(Path(pyfuncitem.path))
        got = results.get(pyfuncitem.originalname)
        if got is None and "" in results:
            pytest.fail("the module did not run (to the end) on MicroPython:\n" + results[""][1],
                        pytrace=False)
        if got is None:
            pytest.fail(f"{pyfuncitem.originalname} was not run on MicroPython", pytrace=False)
        if not got[0]:
            pytest.fail("on MicroPython:\n" + got[1], pytrace=False)
        return True
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        asyncio.run(pyfuncitem.obj())
        return True
    return None
