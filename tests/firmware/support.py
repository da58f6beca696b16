"""What the firmware tests use instead of pytest's helpers, on CPython and on MicroPython alike
(the one suite, two interpreters: docs/testing.md). No pytest, no typing, no f-strings with `=`:
this file runs on the real MicroPython too."""
import os
import sys

MP = sys.implementation.name == "micropython"


def check(cond, what=""):
    """assert cond, what: for the cases that say what they check."""
    if not cond:
        raise AssertionError(what)


def eq(a, b, what=""):
    """assert a == b, with both values in the message."""
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))


class raises:
    """`with raises(CodecError): ...` or `raises(CodecError, fn, *args)`, as pytest.raises.
    `.value` is the exception caught."""

    def __init__(self, exc, fn=None, *args, **kw):
        self.exc = exc
        self.value = None
        if fn is not None:
            with self:
                fn(*args, **kw)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            raise AssertionError("did not raise %s" % self.exc.__name__)
        if not issubclass(kind, self.exc):
            return False  # another exception: let it through
        self.value = value
        return True


def rmtree(path):
    for name in os.listdir(path):
        p = path + "/" + name
        if os.stat(p)[0] & 0x4000:  # S_IFDIR
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


_made = []


def tmpdir(name):
    """A new empty folder (MicroPython: in the interpreter's filesystem; CPython: under the
    system's temporary folder, removed when the process ends)."""
    if MP:
        d = "/tmp_" + name
        try:
            rmtree(d)
        except OSError:
            pass
        os.mkdir(d)
        return d
    import atexit
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="tg-fw-" + name + "-")
    if not _made:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _made])
    _made.append(d)
    return d


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def copytree(src, dst):
    """A copy of folder `src` (files and sub-folders) at `dst`, which must not exist."""
    os.mkdir(dst)
    for name in os.listdir(src):
        s, d = src + "/" + name, dst + "/" + name
        if os.stat(s)[0] & 0x4000:  # S_IFDIR
            copytree(s, d)
        else:
            write_bytes(d, read_bytes(s))


class Rng:
    """A seeded pseudo-random sequence, the same on both interpreters (MicroPython's random
    has no Random class nor shuffle): an LCG, good enough to draw losses and delays."""

    def __init__(self, seed):
        self.state = (seed * 2654435761 + 12345) & 0x7FFFFFFF

    def _next(self):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return self.state

    def random(self):
        return self._next() / 0x80000000

    def randint(self, a, b):
        return a + self._next() % (b - a + 1)

    def choice(self, seq):
        return seq[self._next() % len(seq)]

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self._next() % (i + 1)
            items[i], items[j] = items[j], items[i]
