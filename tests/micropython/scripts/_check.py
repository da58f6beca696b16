"""Plain-assert helpers for scripts that run on MicroPython and on CPython alike."""
import os
import sys

MP = sys.implementation.name == "micropython"
_n = [0]


def check(cond, what=""):
    if not cond:
        raise AssertionError(what)
    _n[0] += 1


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))
    _n[0] += 1


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc:
        _n[0] += 1
        return
    raise AssertionError("%r did not raise %s" % (fn, exc.__name__))


def rmtree(path):
    for name in os.listdir(path):
        p = path + "/" + name
        if os.stat(p)[0] & 0x4000:  # S_IFDIR
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def tmpdir(name):
    if MP:
        d = "/tmp_" + name
        try:
            rmtree(d)
        except OSError:
            pass
        os.mkdir(d)
        return d
    import tempfile
    return tempfile.mkdtemp(prefix=name)


def done():
    print("OK %d checks" % _n[0])
