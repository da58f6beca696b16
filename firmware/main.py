"""Entry point on the reader box: build `hw` from machine and network, run the runtime.

Pins come from firmware/board.py (generated from hardware/boards/): the board named by the
`board` setting, or board.DEFAULT. Everything below is the only place that touches `machine`
and `network`.

Ctrl-C first (docs/security.md, "A box's USB port gives nothing away"): MicroPython lets it
interrupt each script it starts, and opens the REPL, which reads the whole flash, when main.py
ends. So the first statement shuts it (micropython.kbd_intr(-1): 0x03 becomes an ordinary
byte), main() lets it through again only on a box without a maintenance key, and on a box with
one main.py never ends: whatever stops it resets the box instead (_stopped).
"""
try:
    from micropython import kbd_intr as _kbd_intr
    _kbd_intr(-1)
except ImportError:  # CPython: tests import this module
    _kbd_intr = None
except KeyboardInterrupt:  # a Ctrl-C in the instant before the line above: swallowed
    from micropython import kbd_intr as _kbd_intr
    _kbd_intr(-1)

_SETTINGS = "/settings.json"
_intr = [-1]  # the interrupt character as last set


def kbd_intr(c):
    """micropython.kbd_intr, remembered: a KeyboardInterrupt is the technician's only when
    Ctrl-C was let through (hw.kbd_intr, the console's `repl`)."""
    _intr[0] = c
    if _kbd_intr is not None:
        _kbd_intr(c)


def keyed(path):
    """Whether the settings file at `path` holds a maintenance key (read without the firmware,
    which may be what failed to import)."""
    import json
    try:
        with open(path) as f:
            doc = json.loads(f.read())
    except Exception:  # no file, or not JSON: the defaults, no key (as Settings reads it)
        return False
    return type(doc) is dict and bool(doc.get("mkey"))


def _stopped(e):
    """main.py is about to end with `e`. On a box with a maintenance key MicroPython would then
    open the REPL: print it, wait 5 s (time to read it), and reset; the boot counter makes the
    third such boot in a row a safe boot. A box without a key gets the REPL, as always, and
    so does a Ctrl-C that was let through (maintenance mode, `repl`)."""
    if _kbd_intr is None or not keyed(_SETTINGS):
        raise e
    if isinstance(e, KeyboardInterrupt) and _intr[0] == 3:
        raise e
    import sys
    import time
    print("# main.py stopped, resetting (the REPL is shut on this box):")
    sys.print_exception(e)
    time.sleep(5)
    import machine
    machine.reset()


try:
    import gc
    import sys
    import time

    import machine
    import network

    from firmware.runtime.ds3231 import DS3231, from_unix
    from firmware.runtime.safemode import BootGuard
    from firmware.runtime.settings import Settings

    from firmware import board
except Exception as e:  # a firmware that does not import: never the REPL on a locked box
    if __name__ == "__main__":
        _stopped(e)
    raise

# time.time() counts from 2000 on some ports, from 1970 on others; the runtime uses Unix time
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0
_WDT_MS = 30000


def pins_for(settings):
    """The board's constants; an unknown name in the settings falls back to the default."""
    try:
        return board.get(settings.get("board") or None)
    except ValueError as e:
        print("# board:", e)
        return board.get(None)


class SysTime:
    def __init__(self):
        self.rtc = machine.RTC()

    def time(self):
        return time.time() + _EPOCH

    def set(self, t):
        y, mo, d, h, mi, s, wd = from_unix(t)
        self.rtc.datetime((y, mo, d, wd - 1, h, mi, s, 0))


class Ntp:
    def __init__(self, host):
        self.host = host

    def time(self):
        import ntptime
        ntptime.host = self.host
        ntptime.timeout = 2
        return ntptime.time() + _EPOCH  # ntptime counts from the port's epoch


_RGB = {"green": (0, 64, 0), "red": (64, 0, 0), "amber": (64, 32, 0)}


class Indicator:
    """Two LEDs (amber = both) or an RGB LED, and a PWM buzzer when the board has one."""

    def __init__(self, pins):
        if pins.LED == "ws2812":
            import neopixel
            self.rgb = neopixel.NeoPixel(machine.Pin(pins.LED_RGB), pins.LED_COUNT or 1)
        else:
            self.rgb = None
            self.green = machine.Pin(pins.LED_GREEN, machine.Pin.OUT, value=0)
            self.red = machine.Pin(pins.LED_RED, machine.Pin.OUT, value=0)
        self.buzzer = None
        if pins.BUZZER is not None:
            self.buzzer = machine.PWM(machine.Pin(pins.BUZZER), freq=2000, duty_u16=0)

    def set(self, color, hz):
        if self.rgb is not None:
            self.rgb.fill(_RGB.get(color, (0, 0, 0)))
            self.rgb.write()
        else:
            self.green.value(color in ("green", "amber"))
            self.red.value(color in ("red", "amber"))
        if self.buzzer is None:
            return
        if hz:
            self.buzzer.freq(hz)
            self.buzzer.duty_u16(32768)
        else:
            self.buzzer.duty_u16(0)


class Stdin:
    """The USB serial console (the REPL's port) as the console's stream, without blocking."""

    def __init__(self):
        import select
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)

    def ready(self):
        return bool(self.poller.poll(0))

    def read1(self):
        return sys.stdin.read(1)

    def write(self, s):
        sys.stdout.write(s)


class NoReader:
    """A board whose reader has no driver yet: every read reports why (status, selftest)."""

    def __init__(self, model):
        self.model = model

    def read_uid(self):
        raise OSError("no driver for the %s reader yet" % self.model)


def make_reader(pins, i2c):
    if pins.READER in ("WS1850S", "RC522"):
        from firmware.drivers.rc522 import RC522
        from firmware.runtime.taps import RC522Reader
        if pins.READER_BUS == "spi":
            from firmware.drivers.rc522_spi import RC522SPI
            spi = machine.SPI(pins.SPI_ID, baudrate=pins.SPI_BAUD or 1000000, polarity=0, phase=0,
                              sck=machine.Pin(pins.SPI_SCK), mosi=machine.Pin(pins.SPI_MOSI),
                              miso=machine.Pin(pins.SPI_MISO))
            t = RC522SPI(spi, machine.Pin(pins.READER_CS, machine.Pin.OUT, value=1))
        else:
            from firmware.drivers.rc522_i2c import RC522I2C
            t = RC522I2C(i2c, pins.READER_ADDR or 0x28)
        return RC522Reader(RC522(t))
    if pins.READER != "PN532":
        return NoReader(pins.READER)
    from firmware.drivers.pn532 import PN532
    from firmware.runtime.taps import PN532Reader
    if pins.READER_BUS == "uart":
        from firmware.drivers.pn532_uart import PN532UART
        t = PN532UART(machine.UART(pins.READER_UART, pins.READER_BAUD or 115200,
                                   tx=pins.READER_TX, rx=pins.READER_RX))
    elif pins.READER_BUS == "spi":
        from firmware.drivers.pn532_spi import PN532SPI
        spi = machine.SPI(pins.SPI_ID, baudrate=pins.SPI_BAUD or 1000000, polarity=0, phase=0,
                          sck=machine.Pin(pins.SPI_SCK), mosi=machine.Pin(pins.SPI_MOSI),
                          miso=machine.Pin(pins.SPI_MISO))
        t = PN532SPI(spi, machine.Pin(pins.READER_CS, machine.Pin.OUT, value=1))
    else:
        from firmware.drivers.pn532_i2c import PN532I2C
        t = PN532I2C(i2c, pins.READER_ADDR)
    rst = pins.READER_RST
    rst = machine.Pin(rst, machine.Pin.OUT, value=1) if rst is not None else None
    return PN532Reader(PN532(t, reset_pin=rst))


class Hardware:
    def __init__(self, settings):
        import binascii
        import random
        pins = pins_for(settings)
        i2c = None
        if pins.I2C_SDA is not None:
            i2c = machine.I2C(pins.I2C_ID or 0, sda=machine.Pin(pins.I2C_SDA),
                              scl=machine.Pin(pins.I2C_SCL), freq=pins.I2C_FREQ or 100000)
        self.default_id = "tg-" + binascii.hexlify(machine.unique_id()).decode()
        self.wlan = network.WLAN(network.STA_IF)
        from firmware.runtime.net import open_stream
        self.open_stream = open_stream
        self.systime = SysTime()
        self.ntp = Ntp(settings.get("ntp"))
        self.rtc = None
        if pins.RTC and i2c is not None and pins.RTC_ADDR in i2c.scan():
            self.rtc = DS3231(i2c)
        self.reader = make_reader(pins, i2c)
        self.indicator = Indicator(pins)
        adc = pins.BAT_ADC
        if adc is not None:
            from firmware.runtime.health import Battery
            self.battery = Battery(machine.ADC(machine.Pin(adc), atten=machine.ADC.ATTN_11DB),
                                   pins.BAT_RATIO)
        else:
            self.battery = None
        self.wdt = machine.WDT(timeout=_WDT_MS)
        self.serial = Stdin()
        self.kbd_intr = kbd_intr
        self.reset = machine.reset
        self.rand = random.random
        self.rand_bytes = lambda n: bytes(random.getrandbits(8) for _ in range(n))
        self.sos_button = None  # the SOS button: pressed() -> bool, when the board has one
        if pins.SOS_BUTTON is not None:
            pin = machine.Pin(pins.SOS_BUTTON, machine.Pin.IN,
                              machine.Pin.PULL_UP if pins.SOS_PULL == "internal-up" else None)
            self.sos_button = lambda: pin.value() == 0  # to GND when pressed


def main():
    import asyncio
    from firmware.runtime.app import Runtime
    settings = Settings(_SETTINGS)
    if settings.status != "ok":
        print("# settings:", settings.status, "- defaults in use")
    if not settings.get("mkey"):
        kbd_intr(3)  # no maintenance key (a factory box): Ctrl-C reaches the REPL, as always
    gc.collect()
    rt = Runtime(Hardware(settings), settings, BootGuard("/boots"), ota_root="/ota")
    asyncio.run(rt.run())


if __name__ == "__main__":  # the board runs /main.py as __main__
    try:
        main()
    except BaseException as e:  # KeyboardInterrupt and SystemExit too
        _stopped(e)
