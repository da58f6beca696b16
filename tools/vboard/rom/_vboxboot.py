# Run by the virtual board (tools/vboard/vboard.mjs --box) before boot.py, at every reset.
# It fits the WebAssembly port to what the ESP32 port offers the firmware:
#  - time.sleep/sleep_ms/sleep_us sleep for real (the port busy-waits, which would burn a
#    host core while the firmware polls its reader);
#  - asyncio.run(coro): the port runs tasks on the JavaScript event loop and has no run();
#    here it starts `coro` as the board's program and returns. The bridge then routes the
#    serial line to sys.stdin, as a board does while main.py runs, until Ctrl-C stops the
#    loop (asyncio.new_event_loop drops every task) or the program ends;
#  - micropython.kbd_intr(c) also tells the bridge, which delivers Ctrl-C on this port (on a
#    board the UART/USB driver compares each byte with the interrupt character);
#  - asyncio.open_connection, which the port lacks, is _vboxnet's: TCP streams bridged to
#    Node's `net` without blocking. The firmware opens its connections only through
#    firmware/runtime/net.py, which calls it, so the unmodified firmware gets the bridge.
import sys
import time

import _vbox
import asyncio
import micropython as _micropython


def _sleep_ms(ms):
    _vbox.sleep(int(ms))


def _sleep(s):
    _vbox.sleep(int(s * 1000))


def _sleep_us(us):
    if us >= 1000:
        _vbox.sleep(us // 1000)


time.sleep_ms = _sleep_ms
time.sleep = _sleep
time.sleep_us = _sleep_us


async def _program(coro):
    try:
        await coro
    except SystemExit:
        pass  # machine.reset(): the bridge restarts the board
    except BaseException as e:
        if not isinstance(e, asyncio.CancelledError):
            sys.print_exception(e)
    finally:
        _vbox.program_ended()


def _run(coro):
    asyncio.create_task(_program(coro))
    _vbox.program_started()


asyncio.run = _run


class _MicroPython:
    """The micropython module, its kbd_intr also heard by the bridge (sys.modules comes before
    the built-in modules at import)."""

    def __getattr__(self, name):
        return getattr(_micropython, name)

    @staticmethod
    def kbd_intr(c):
        _micropython.kbd_intr(c)
        _vbox.kbd_intr(c)


sys.modules["micropython"] = _MicroPython()

import _vboxnet  # noqa: E402 (after asyncio, which it extends)

asyncio.open_connection = _vboxnet.open_connection
