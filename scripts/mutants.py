"""A small mutation runner (docs/testing.md, "Mutation run"): for each core module, every
comparison flipped at its edge, every integer constant moved by one, every `and`/`or` swapped
and every condition negated, one at a time. Each mutant meets the tests that concern its module
and run its function, in a copy of the project (`mutants/`, git-ignored); a mutant whose tests
still pass is a survivor.

    python scripts/mutants.py [--jobs 1] [--only firmware/decide.py] [--json out.json] [--list]

Why not mutmut 3: it mutates only inside functions (its trampolines), so the module-level
limits the protocol states (MAX_EVENTS, REPEAT_S, DOUBLE_TAP, CLOCK_OFF_S, the journal's
header size...) are never mutated, nor are decorated methods (the journal's properties).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "mutants"

# each module with the tests that concern it (not the whole suite: a run is minutes)
MODULES: dict[str, list[str]] = {
    "fleet/checks.py": ["tests/fleet/test_protocol_edges.py", "tests/fleet/test_ingest.py",
                        "tests/fleet/test_hostile_payloads.py"],
    "firmware/codec.py": ["tests/firmware/test_codec.py", "tests/fleet/test_protocol_edges.py"],
    "firmware/decide.py": ["tests/firmware/test_decide.py"],
    # each mutant meets only the tests that run its function: whole files cost little more
    "fleet/matching.py": ["tests/fleet/test_matching.py", "tests/fleet/test_blocked_everywhere.py",
                          "tests/sun/test_sun_tags.py"] + [
        f"tests/fleet/test_protocol_edges.py::test_the_{t}_on_both_sides"
        for t in ("double_tap_window", "clock_offset_threshold")],
    "firmware/journal.py": ["tests/firmware/test_journal.py"],
}

if os.environ.get("TELEGEST_TEST_DATABASE_URL"):  # the row locks only PostgreSQL has
    MODULES["fleet/matching.py"].append(
        "tests/fleet/test_postgres.py::test_two_matchers_at_once_never_take_the_same_events")

_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
         ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
         ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_SYM = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
        ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


@dataclass
class Mutant:
    module: str
    index: int
    line: int
    what: str
    scope: int | None = None  # first line of its function (its code's co_firstlineno)
    status: str = "pending"  # killed, survived, timeout

    @property
    def ident(self) -> str:
        return f"{self.module}:{self.line} {self.what}"


def _candidates(tree: ast.AST) -> list[tuple[ast.AST, str, object]]:
    """Every place a mutation applies, in a fixed order: (node, kind, detail)."""
    out: list[tuple[ast.AST, str, object]] = []
    skip: set[int] = set()
    for node in ast.walk(tree):
        # docstrings and annotations are not code
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
        for ann in _annotations(node):
            skip.update(id(n) for n in ast.walk(ann))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            out += [(node, "cmp", i) for i, op in enumerate(node.ops) if type(op) in _FLIP]
        elif isinstance(node, ast.BoolOp):
            out.append((node, "boolop", None))
        elif (isinstance(node, ast.Constant) and type(node.value) is int):
            out += [(node, "int", +1), (node, "int", -1)]
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
            out.append((node, "negate", None))
            if isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not):
                skip.add(id(node.test))  # its negation is the same mutant
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append((node, "unnot", None))
    return out


def _annotations(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.AnnAssign):
        return [node.annotation]
    if isinstance(node, ast.arg) and node.annotation is not None:
        return [node.annotation]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
        return [node.returns]
    return []


def _apply(node: ast.AST, kind: str, detail: object) -> str:
    """Mutate `node` in place; returns what was done."""
    if kind == "cmp":
        op = node.ops[detail]
        new = _FLIP[type(op)]
        node.ops[detail] = new()
        return f"`{_SYM[type(op)]}` -> `{_SYM[new]}`"
    if kind == "boolop":
        old = "and" if isinstance(node.op, ast.And) else "or"
        node.op = ast.Or() if old == "and" else ast.And()
        return f"`{old}` -> `{'or' if old == 'and' else 'and'}`"
    if kind == "int":
        old = node.value
        node.value = old + detail
        return f"`{old}` -> `{node.value}`"
    if kind == "negate":
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
        return "condition negated"
    if kind == "unnot":  # `not x` -> `not not x`, that is bool(x)
        node.operand = ast.UnaryOp(op=ast.Not(), operand=node.operand)
        return "`not` removed"
    raise ValueError(kind)


def _scope(tree: ast.AST, line: int) -> int | None:
    """The first line of the innermost function around `line` (a decorator's, if any), or
    None at module or class level: then every test may see the mutant."""
    best = None
    for f in ast.walk(tree):
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([d.lineno for d in f.decorator_list] + [f.lineno])
            if start <= line <= f.end_lineno and (best is None or start > best):
                best = start
    return best


def mutants_of(module: str) -> list[Mutant]:
    src = (ROOT / module).read_text()
    out = []
    for i in range(len(_candidates(ast.parse(src)))):
        tree = ast.parse(src)  # a fresh tree for each
        node, kind, detail = _candidates(tree)[i]
        out.append(Mutant(module, i, node.lineno, _apply(node, kind, detail),
                          _scope(tree, node.lineno)))
    return out


def mutated_source(module: str, index: int) -> str:
    tree = ast.parse((ROOT / module).read_text())
    node, kind, detail = _candidates(tree)[index]
    _apply(node, kind, detail)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _copy_project(dest: Path) -> None:
    """The tracked and new (not ignored) files of the worktree, copied under `dest`."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for f in files:
        src = ROOT / f
        if not f or f.startswith("mutants/") or not src.is_file():
            continue
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / f)
    if (ROOT / "node_modules").exists():
        (dest / "node_modules").symlink_to(ROOT / "node_modules")


_servers: dict[Path, subprocess.Popen] = {}


def _pytest(copy: Path, tests: list[str], timeout: float,
            env: dict | None = None) -> tuple[str, float]:
    """pytest on `tests` in `copy`, in a fork of a warm process (scripts/mutants_fork.py)."""
    server = _servers.get(copy)
    if server is None:
        server = _servers[copy] = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "mutants_fork.py"), str(copy)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    args = ["-q", "-x", "-p", "no:cacheprovider", "-p", "mutants_plugin", "--no-header", *tests]
    # tests/firmware runs each test on MicroPython too, from the same source: the CPython half
    # sees every mutant the other would, in a fraction of the time
    markers = "not micropython"
    if not os.environ.get("TELEGEST_TEST_DATABASE_URL"):
        markers += " and not postgres"  # they fail, never skip, without a server
    args[:0] = ["-m", markers]
    start = time.monotonic()
    server.stdin.write(json.dumps({"args": args, "env": env or {}, "timeout": timeout}) + "\n")
    server.stdin.flush()
    rc = json.loads(server.stdout.readline())
    # 1: a test failed; anything else (no test collected, usage error) is the runner's fault
    status = {0: "survived", 1: "killed", "timeout": "timeout"}.get(rc, f"error {rc}")
    return status, time.monotonic() - start


def _check_copy(copy: Path, module: str) -> None:
    """The copy's module is the one the tests import, not the worktree's (editable install)."""
    name = module.removesuffix(".py").replace("/", ".")
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    got = subprocess.run([sys.executable, "-c", f"import {name}; print({name}.__file__)"],
                         cwd=copy, env=env, capture_output=True, text=True, check=True).stdout
    if Path(got.strip()).resolve() != (copy / module).resolve():
        raise SystemExit(f"the tests would import {got.strip()}, not the mutated copy")


def run_module(module: str, jobs: int, log, only: set[str] | None = None) -> dict:
    tests = MODULES[module]
    # a fresh copy of the worktree per module and job (new tests included)
    copies = [WORK / Path(module).stem / f"w{j}" for j in range(jobs)]
    for c in copies:
        _copy_project(c)
        _check_copy(c, module)
    # without a mutant, recording which tests run which function of the module
    ran_file = copies[0] / "mutants-ran.json"
    status, base = _pytest(copies[0], tests, 900, {"MUTANTS_TRACE": str(copies[0] / module),
                                                   "MUTANTS_TRACE_OUT": str(ran_file)})
    if status != "survived":
        raise SystemExit(f"{module}: its tests fail without any mutant ({status})")
    ran: dict[str, list[int]] = json.loads(ran_file.read_text())
    timeout = max(30.0, 5 * base)
    mutants = mutants_of(module)
    total = len(mutants)
    if only is not None:  # --again: the survivors of an earlier run only; the rest stay killed
        mutants = [m for m in mutants if m.ident in only]
    log(f"{module}: {len(mutants)} mutants, tests {base:.1f}s without one")
    free = list(copies)
    done: list[Mutant] = []

    def one(m: Mutant) -> Mutant:
        seeing = [t for t, firsts in ran.items() if m.scope is None or m.scope in firsts]
        if not seeing:  # no test runs its function
            m.status = "survived"
            done.append(m)
            log(f"  survived {m.ident} (no test runs it)")
            return m
        copy = free.pop()
        try:
            (copy / module).write_text(mutated_source(module, m.index))
            (copy / "mutants-select.json").write_text(json.dumps(seeing))
            m.status, _ = _pytest(copy, tests, timeout,
                                  {"MUTANTS_SELECT": str(copy / "mutants-select.json")})
        finally:
            shutil.copy2(ROOT / module, copy / module)
            free.append(copy)
        done.append(m)
        if m.status == "survived" or m.status.startswith("error"):
            log(f"  {m.status} {m.ident}")
        if len(done) % 20 == 0:
            log(f"  {len(done)}/{len(mutants)} tested")
        return m

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, mutants))
    for c in copies:  # the warm pytest of each copy ends with its stdin
        if (server := _servers.pop(c, None)) is not None:
            server.stdin.close()
            server.wait()
    killed = sum(m.status in ("killed", "timeout") for m in done) + (total - len(mutants))
    survivors = [m.ident for m in sorted(done, key=lambda m: (m.line, m.index))
                 if m.status == "survived"]
    errors = [m.ident for m in done if m.status.startswith("error")]
    if errors:
        raise SystemExit(f"{module}: the tests could not run against {errors}")
    result = {"mutants": total, "killed": killed, "survived": len(survivors),
              "killed_pct": round(100 * killed / total, 1) if total else 100.0,
              "survivors": survivors}
    if only is not None:
        result["tested_again"] = len(mutants)
    log(f"{module}: {killed} killed, {len(survivors)} survived "
        f"({result['killed_pct']} % killed)")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=1, choices=(1, 2),
                   help="mutants tested at once (the machine is shared: 1 or 2)")
    p.add_argument("--only", action="append", choices=sorted(MODULES),
                   help="one module (repeatable); all five by default")
    p.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    p.add_argument("--json", type=Path, help="also write the summary to this file")
    p.add_argument("--again", type=Path, metavar="SUMMARY.json",
                   help="test again only the survivors of an earlier run's --json summary "
                        "(after adding tests; the code must not have changed since)")
    args = p.parse_args(argv)
    modules = args.only or list(MODULES)
    if args.list:
        for mod in modules:
            for m in mutants_of(mod):
                print(m.ident)
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        earlier = {mod: set(r["survivors"]) for mod, r in
                   json.loads(args.again.read_text())["modules"].items()} if args.again else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        p.error(f"--again {args.again}: not the --json summary of an earlier run ({e!r})")
    summary = {mod: run_module(mod, args.jobs, log, earlier.get(mod)) for mod in modules}
    total = sum(r["mutants"] for r in summary.values())
    killed = sum(r["killed"] for r in summary.values())
    out = {"modules": summary, "mutants": total, "killed": killed,
           "killed_pct": round(100 * killed / total, 1) if total else 100.0}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if all(r["killed_pct"] >= 95 for r in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
