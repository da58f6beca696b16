"""Millisecond ticks that wrap on MicroPython (time.ticks_*), plain ints on CPython."""
try:
    from time import sleep_ms, ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython
    import time as _time

    def sleep_ms(ms):
        _time.sleep(ms / 1000)

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, d):
        return a + d


def due(now, at):
    """Has tick `at` come (at `now`)? Wrap-safe for gaps under 2**29 ms (6 days)."""
    return at is None or ticks_diff(now, at) >= 0
