# machine for the virtual box (tools/vboard/vboard.mjs --box): what firmware/main.py uses of
# the ESP32 port's module. The UART is a real byte stream to a simulator when the bridge was
# given one for that UART id (--uart ID=HOST:PORT: the PN532 simulator's TCP port); other
# parts keep their state in memory. docs/virtual-board.md lists what each stand-in does.
import binascii
import time

import _vbox

_t0 = time.time


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._v = 0 if value is None else int(bool(value))
        self.handler = None

    def init(self, mode=-1, pull=-1, value=None):
        if value is not None:
            self._v = int(bool(value))

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = int(bool(v))

    __call__ = value

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0

    def irq(self, handler=None, trigger=3):
        self.handler = handler


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin = pin
        self._freq = freq
        self._duty = duty_u16

    def freq(self, hz=None):
        if hz is None:
            return self._freq
        self._freq = hz

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d

    def deinit(self):
        self._duty = 0


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = pin

    def read_uv(self):
        return 2050000  # a full battery behind a 1:2 divider (4.1 V)

    def read_u16(self):
        return 40000

    def read(self):
        return 2500


class UART:
    """A UART whose TX/RX are a TCP stream to a simulator, or nothing (reads get no byte)."""

    def __init__(self, id, baudrate=115200, **kw):
        self.id = id
        self.baudrate = baudrate
        self._h = 0
        self._open()

    def _open(self):
        if self._h > 0:
            return
        h = _vbox.uart_open(self.id)
        self._h = h if h > 0 else 0

    def init(self, baudrate=115200, **kw):
        self.baudrate = baudrate

    def deinit(self):
        if self._h:
            _vbox.close(self._h)
            self._h = 0

    def write(self, buf):
        if self._h:
            if _vbox.send(self._h, binascii.hexlify(buf).decode()) < 0:
                self._h = 0  # the cable is out: try it again at the next write
                self._open()
        return len(buf)

    def any(self):
        if not self._h:
            return 0
        # Wait up to 1 ms for a first byte: the driver polls any() with sleep_ms(1) between,
        # and a short real wait keeps that loop off the host's CPU.
        n = _vbox.avail(self._h, 1)
        return n if n > 0 else 0

    def read(self, n=-1):
        if not self._h:
            return None
        avail = _vbox.avail(self._h, 0)
        if avail <= 0:
            return None
        r = _vbox.recv(self._h, avail if n is None or n < 0 else min(n, avail), 0)
        if type(r) is int:
            return None
        return bytes(r) or None

    def readinto(self, buf, n=-1):
        data = self.read(len(buf) if n < 0 else n)
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

    def flush(self):
        pass


class I2C:
    """An I2C bus with nothing on it: scan() is empty (the firmware then runs without its
    DS3231), and a transfer fails as a bus without that device does."""

    def __init__(self, id=0, scl=None, sda=None, freq=400000):
        self.id = id

    def scan(self):
        return []

    def _none(self, *a, **kw):
        raise OSError(19)  # ENODEV

    readfrom = readfrom_into = writeto = readfrom_mem = readfrom_mem_into = _none
    writeto_mem = writevto = _none


class SPI:
    """An SPI bus with nothing on it: reads are 0xFF, as a bus with no device pulls up."""

    def __init__(self, id=1, **kw):
        self.id = id

    def init(self, **kw):
        pass

    def write(self, buf):
        pass

    def read(self, n, write=0):
        return b"\xff" * n

    def readinto(self, buf, write=0):
        for i in range(len(buf)):
            buf[i] = 0xFF

    def write_readinto(self, wbuf, rbuf):
        self.readinto(rbuf)


class RTC:
    """Setting the RTC moves time.time() (and localtime/gmtime/mktime users) as on a board."""

    _offset = 0

    def __init__(self, id=0):
        pass

    def datetime(self, dt=None):
        if dt is None:
            y, mo, d, h, mi, s, wd, yd = time.gmtime(time.time())
            return (y, mo, d, wd, h, mi, s, 0)
        y, mo, d, wd, h, mi, s = dt[:7]
        target = time.mktime((y, mo, d, h, mi, s, 0, 0))
        RTC._offset = target - _t0()
        time.time = _rtc_time


def _rtc_time():
    return _t0() + RTC._offset


class WDT:
    """The watchdog: the bridge hard-resets the board when it is not fed within `timeout`
    ms while the firmware runs (a stopped program, at the REPL, stops it too)."""

    def __init__(self, id=0, timeout=5000):
        _vbox.wdt_start(timeout)

    def feed(self):
        _vbox.wdt_feed()


def unique_id():
    return binascii.unhexlify(_vbox.unique_id())


def freq(hz=None):
    return 240000000


def reset():
    _vbox.reset()
    raise SystemExit


def soft_reset():
    _vbox.soft_reset()
    raise SystemExit


def reset_cause():
    return _vbox.reset_cause()


def idle():
    _vbox.sleep(1)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
