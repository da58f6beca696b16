"""The firmware test runner on MicroPython: runs every `test_*` function of one module of the
one suite and reports each on its own lines, which tests/firmware/conftest.py reads back as the
`[micropython]` result of that test. An `async def` test is awaited (the driver that calls
`run` is itself awaited by tools/micropython/run_mp.mjs). MicroPython-safe: no pytest here.

    @@START <name>
    @@TEST <name> ok
    @@START <name>
    @@TEST <name> fail
    <traceback lines>
    @@END
"""
import io
import sys


def _trace(e):
    buf = io.StringIO()
    if hasattr(sys, "print_exception"):
        sys.print_exception(e, buf)
    else:  # CPython, when the runner is tried there
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__, file=buf)
    return buf.getvalue()


async def run(name, only=None):
    """Run module `name`'s tests (or the names in `only`); returns how many failed."""
    try:
        __import__(name)
        mod = sys.modules[name]
    except Exception as e:
        print("@@IMPORT fail")
        print(_trace(e))
        print("@@END")
        return -1
    names = sorted(n for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n)))
    failed = 0
    for n in names:
        if only and n not in only:
            continue
        print("@@START %s" % n)
        try:
            r = getattr(mod, n)()
            if hasattr(r, "send"):  # a coroutine: an async test
                await r
            print("@@TEST %s ok" % n)
        except Exception as e:
            failed += 1
            print("@@TEST %s fail" % n)
            print(_trace(e))
            print("@@END")
    print("@@DONE %d" % len(names))
    return failed
