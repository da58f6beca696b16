"""Every `telegest` subcommand, found by walking the argparse tree (a new command is swept
without touching this file), run with bad values: serial ports and broker URLs that go nowhere
(closed loopback ports, so nothing waits), bad flash addresses, idents with spaces, database
URLs that cannot open, missing files, directories instead of files, CSVs in UTF-16 or cp1252,
negative numbers. Each case must end with one `telegest:` line (or argparse's usage error) and
an exit code documented in docs/technician.md; a traceback, an undocumented code or a hang fails.

Each case runs in a forked child of this process (the modules are imported once, here), its
stdin at /dev/null as in a script, its output in files, killed if it runs past CASE_TIMEOUT.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tools.cli import build_parser, main

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(900)]

DOCUMENTED = {0, 2, 130}  # docs/technician.md, "Exit codes" (70 is a bug: it fails here)
CASE_TIMEOUT = 20.0
# services retry a broker that does not answer, as they should: they pass if they say so
SERVICES = {"up", "fleet worker", "fleet api", "device sim"}
SERVICE_TIMEOUT = 6.0
SAYS_WHY = re.compile(r"cannot reach|retrying|waiting|refused")
TRACEBACK = "Traceback (most recent call last)"


def _closed_port() -> int:
    """A loopback port with nothing listening: a connect is refused at once."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def leaf_commands(parser: argparse.ArgumentParser, path=()):
    """(path, parser) for every runnable command of the tree."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from leaf_commands(child, path + (name,))


class Values:
    """Bad values by what an argument is (its name, its type), and one usable value each."""

    def __init__(self, tmp: Path, db: str):
        closed = _closed_port()
        self.closed = closed
        self.dir = tmp / "a-folder"
        self.dir.mkdir()
        self.missing = str(tmp / "missing" / "nothing.bin")
        utf16 = tmp / "utf16.csv"
        utf16.write_text("name,token\nHélène Œuvray,C1-AAAA\n", encoding="utf-16")
        cp1252 = tmp / "cp1252.csv"
        cp1252.write_bytes("nom;jeton\nHélène Œuvray;C1-AAAA\n".encode("cp1252"))
        swapped = tmp / "swapped.csv"
        swapped.write_text("token,name\nC1-AAAA,Mme Durand\n", encoding="utf-8")
        garbage = tmp / "garbage.bin"
        garbage.write_bytes(bytes(range(256)) * 8)
        html = tmp / "404.html"
        html.write_text("<html><body>404 Not Found</body></html>\n")
        empty_json, list_json = tmp / "empty.json", tmp / "list.json"
        empty_json.write_text("{}")
        list_json.write_text("[1, 2]")
        self.files = [self.missing, str(self.dir), str(utf16), str(cp1252), str(swapped),
                      str(garbage), str(html), str(empty_json), str(list_json)]
        self.db = db
        ports = [f"socket://127.0.0.1:{closed}", "socket://127.0.0.1", "/dev/ttyUSB97",
                 "rfc2217://127.0.0.1:abc", "bogus://x", str(self.dir), ""]
        brokers = ["host:abc", f"127.0.0.1:{closed}", "127.0.0.1:99999", ":", "", "[::1"]
        dbs = ["not a url", f"sqlite:///{self.dir}", f"sqlite:///{tmp}/missing/x.db",
               f"postgresql+psycopg://u@127.0.0.1:{closed}/x", "mysql://x/y"]
        idents = ["r 50", "", "-", "é" * 80, "a/b"]
        self.by_name = {
            "port": ports, "broker": brokers, "db": dbs, "ident": idents, "device": idents,
            "target": idents,
            "address": ["xyz", "0x1001", "-1", "0x100000000"],
            "fleet": [f"http://127.0.0.1:{closed}", "not a url", "ftp://x", "http://[::1"],
            "badge": ["zz", "", "04A1B2C3D4E5F6" * 10],
            "token": ["", "TG1.1.2.ABCDEFGH.!!!!", "TG1.1.2.ABCDEFGH.AAAAAAAAAAAAAAAA", "x" * 65],
            "uid": ["", "zz" * 200],
            "email": ["not-an-email", ""],
            "since": ["yesterday", "2026-13-45"],
            "version": ["", "not a version"],
            "waves": ["abc", "0,-1", "200%"],
            "devices": ["", ",,,", "r 50"],
            "lang": ["", "x" * 300],
            "uri": ["not a uri", "x" * 300],
            "encoding": ["no-such-codec", "utf-16"],
            "by": ["", " "],
            "host": ["256.1.1.1", "not a host"],
            "line": [["status", "now"], ["wifi", "set"]],
        }
        self.file_args = {"image", "csv", "config", "credentials", "source", "bundle", "key",
                          "out", "sheet", "tap_log"}
        # folders: a file where a folder should be, or a folder inside a file
        self.by_name["data"] = self.by_name["journal_dir"] = [str(garbage),
                                                              str(garbage / "sub")]

    def bad(self, action: argparse.Action) -> list:
        name = action.dest
        if action.choices is not None:
            return ["not-a-choice"]
        if name in self.file_args:
            return self.files
        if name in self.by_name:
            return self.by_name[name]
        if action.nargs == 0:
            return []  # a flag: nothing to get wrong
        if action.type is int:
            return ["abc", "-1", "0", "99999999999999999999"]
        if action.type is float:
            return ["abc", "-1", "nan", "inf"]
        return ["", "x" * 300]

    def usable(self, action: argparse.Action):
        """A value that passes argparse and points nowhere harmful (a closed port...)."""
        name = action.dest
        if action.choices is not None:
            return next(iter(action.choices))
        if action.nargs == 2:
            return ["Mme Durand", "C1-AAAA"]
        table = {"port": f"socket://127.0.0.1:{self.closed}",
                 "broker": f"127.0.0.1:{self.closed}", "db": self.db, "by": "sweep",
                 "fleet": f"http://127.0.0.1:{self.closed}", "reason": "sweep",
                 "email": "sweep@example.org", "version": "9.9.9", "key": self.missing}
        if name in table:
            return table[name]
        if name in self.file_args:
            return self.missing
        if action.type in (int, float):
            return "1"
        return "r-0001"


def cases(values: Values):
    """(argv, what) for every command: each argument given a bad value in turn, the
    required ones filled with usable values."""
    for path, parser in leaf_commands(build_parser()):
        actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
        # required arguments, and whatever reaches a server or a database even if optional,
        # so that nothing reaches a real one (a broker on 1883, var/telegest.db)
        base: dict[argparse.Action, object] = {
            a: values.usable(a) for a in actions
            if a.required or (not a.option_strings and a.nargs not in ("?", "*"))
            or a.dest in ("broker", "db", "fleet") and not a.choices}
        for target in actions:
            for bad in values.bad(target):
                given = dict(base)
                given[target] = bad
                yield list(path) + _argv(given), f"{' '.join(path)} {target.dest}={bad!r}"


def _argv(given: dict) -> list[str]:
    opts, pos = [], []
    for action, value in given.items():
        vals = value if isinstance(value, list) else [value]
        if action.option_strings:
            opts += [action.option_strings[-1], *map(str, vals)]
        else:
            pos += [str(v) for v in vals]
    # "--" so that a positional value starting with "-" stays a value
    return opts + (["--", *pos] if pos else [])


def run_forked(argv: list[str], tmp: Path,
               timeout: float = CASE_TIMEOUT) -> tuple[int | None, str, str]:
    """main(argv) in a child process: (exit code or None if it hung, stdout, stderr)."""
    out, err = tmp / "out.txt", tmp / "err.txt"
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 99
        try:
            os.setsid()
            fd_in = os.open(os.devnull, os.O_RDONLY)
            os.dup2(fd_in, 0)
            sys.stdin = open(0, closefd=False)
            sys.stdout = open(out, "w", buffering=1)
            sys.stderr = open(err, "w", buffering=1)
            os.dup2(sys.stdout.fileno(), 1)
            os.dup2(sys.stderr.fileno(), 2)
            import logging

            logging.root.handlers.clear()  # pytest's capture: main() logs to stderr as in a shell
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            except BaseException:  # noqa: BLE001 - what the test is looking for
                import traceback

                traceback.print_exc()
                code = 99
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            code = None
            break
        time.sleep(0.01)
    return code, out.read_text(errors="replace"), err.read_text(errors="replace")


@pytest.fixture(scope="module")
def sweep_db(tmp_path_factory):
    from fleet.db import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('sweepdb')}/fleet.db"
    migrate(url)
    return url


def test_the_tree_is_walked():
    paths = {" ".join(p) for p, _ in leaf_commands(build_parser())}
    assert {"device flash", "device provision", "badge sheet", "badge write", "fleet worker",
            "up"} <= paths


SHARDS = 4  # the cases in four tests, so that pytest-xdist runs them side by side


@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_subcommand_refuses_bad_values_in_one_line(shard, tmp_path, sweep_db,
                                                         monkeypatch):
    # pre-import what the handlers import lazily, so that each forked case starts at once
    import esptool  # noqa: F401
    import fleet.api.app  # noqa: F401
    import tools.field.badge  # noqa: F401
    import tools.field.deploy  # noqa: F401
    import tools.field.flash  # noqa: F401
    import tools.field.provision  # noqa: F401
    import tools.field.sheet  # noqa: F401
    import tools.sim.run  # noqa: F401

    monkeypatch.setenv("TELEGEST_API_KEY", "tg_sweep")  # so provision gets to its port
    monkeypatch.setenv("TELEGEST_DATABASE_URL", sweep_db)
    monkeypatch.chdir(tmp_path)  # whatever a case writes by default (var/...) stays here
    values = Values(tmp_path, sweep_db)
    work = tmp_path / "run"
    work.mkdir()
    failures, count = [], 0
    for i, (argv, what) in enumerate(cases(values)):
        if i % SHARDS != shard:
            continue
        count += 1
        service = any(what.startswith(s + " ") for s in SERVICES)
        code, out, err = run_forked(argv, work, SERVICE_TIMEOUT if service else CASE_TIMEOUT)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if code is None and service and SAYS_WHY.search(err) and TRACEBACK not in err:
            continue  # a service waiting for its broker, and saying so
        if code is None:
            failures.append(f"{what}: still running after its time, silent ({argv})\n"
                            f"{err[-500:]}")
        elif TRACEBACK in err or TRACEBACK in out:
            failures.append(f"{what}: traceback ({argv})\n{err[-1500:]}")
        elif code not in DOCUMENTED:
            failures.append(f"{what}: exit code {code} ({argv})\n{err[-500:]}")
        elif code == 2 and not (lines and lines[-1].startswith("telegest: ")):
            failures.append(f"{what}: exit 2 without a last telegest: line ({argv})\n"
                            f"{err[-500:]}")
    assert count > 300 // SHARDS
    assert not failures, f"{len(failures)} of {count} cases:\n\n" + "\n\n".join(failures)
