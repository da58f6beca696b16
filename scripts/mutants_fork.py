"""A warm pytest for the mutation runner (scripts/mutants.py): the third-party imports are done
once, here, and each mutant's tests run in a fork of this process. Nothing of the project is
imported here, only in the children, so each child imports the mutated module afresh.

Reads one JSON request a line on stdin ({"args", "env", "timeout"}), answers with pytest's exit
code, or "timeout", one JSON line on stdout."""
import json
import os
import signal
import sys
import time

import alembic  # noqa: F401
import fastapi  # noqa: F401
import httpx  # noqa: F401
import hypothesis  # noqa: F401
import pydantic  # noqa: F401
import pytest
import sqlalchemy.orm  # noqa: F401


def run(copy: str, req: dict) -> int | str:
    pid = os.fork()
    if pid == 0:
        try:
            os.environ.update(req["env"])
            sys.path[:0] = [copy, os.path.join(copy, "scripts")]
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            code = int(pytest.main(req["args"]))
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + req["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.02)


def main() -> None:
    copy = sys.argv[1]
    os.chdir(copy)
    for line in sys.stdin:
        print(json.dumps(run(copy, json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
