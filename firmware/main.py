"""Entry point on the reader box: build `hw` from machine and network, run the runtime.

Pins come from firmware/board.py (generated from hardware/boards/) when it is there; the
names read are listed in _PINS with the defaults for an ESP32 DevKit. Everything below is the
only place that touches `machine` and `network`.
"""
import gc
import sys
import time

import machine
import network

from firmware.runtime.ds3231 import DS3231, from_unix
from firmware.runtime.safemode import BootGuard
from firmware.runtime.settings import Settings

try:
    from firmware import board
except ImportError:
    board = None

_PINS = {"I2C_SDA": 21, "I2C_SCL": 22, "LED_GREEN": 25, "LED_RED": 26, "BUZZER": 27,
         "BAT_ADC": None, "BAT_RATIO": 2.0, "PN532_BUS": "i2c", "PN532_UART": 2,
         "PN532_TX": 17, "PN532_RX": 16, "PN532_RST": None, "RTC": True}
# time.time() counts from 2000 on some ports, from 1970 on others; the runtime uses Unix time
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0
_WDT_MS = 30000


def pin(name):
    return getattr(board, name, _PINS[name])


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


class Indicator:
    """Two LEDs (amber = both) and a PWM buzzer."""

    def __init__(self):
        self.green = machine.Pin(pin("LED_GREEN"), machine.Pin.OUT, value=0)
        self.red = machine.Pin(pin("LED_RED"), machine.Pin.OUT, value=0)
        self.buzzer = machine.PWM(machine.Pin(pin("BUZZER")), freq=2000, duty_u16=0)

    def set(self, color, hz):
        self.green.value(color in ("green", "amber"))
        self.red.value(color in ("red", "amber"))
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


def mqtt_factory(client_id, host, port, user, password, keepalive):
    from umqtt.simple import MQTTClient
    return MQTTClient(client_id, host, port, user or None, password or None, keepalive)


def make_reader(i2c):
    from firmware.drivers.pn532 import PN532
    from firmware.runtime.taps import PN532Reader
    bus = pin("PN532_BUS")
    if bus == "uart":
        from firmware.drivers.pn532_uart import PN532UART
        t = PN532UART(machine.UART(pin("PN532_UART"), 115200, tx=pin("PN532_TX"),
                                   rx=pin("PN532_RX")))
    else:
        from firmware.drivers.pn532_i2c import PN532I2C
        t = PN532I2C(i2c)
    rst = pin("PN532_RST")
    rst = machine.Pin(rst, machine.Pin.OUT, value=1) if rst is not None else None
    return PN532Reader(PN532(t, reset_pin=rst))


class Hardware:
    def __init__(self, settings):
        import binascii
        import random
        i2c = machine.I2C(0, sda=machine.Pin(pin("I2C_SDA")), scl=machine.Pin(pin("I2C_SCL")),
                          freq=100000)
        self.default_id = "tg-" + binascii.hexlify(machine.unique_id()).decode()
        self.wlan = network.WLAN(network.STA_IF)
        self.mqtt_factory = mqtt_factory
        self.systime = SysTime()
        self.ntp = Ntp(settings.get("ntp"))
        self.rtc = DS3231(i2c) if pin("RTC") and 0x68 in i2c.scan() else None
        self.reader = make_reader(i2c)
        self.indicator = Indicator()
        adc = pin("BAT_ADC")
        if adc is not None:
            from firmware.runtime.health import Battery
            self.battery = Battery(machine.ADC(machine.Pin(adc), atten=machine.ADC.ATTN_11DB),
                                   pin("BAT_RATIO"))
        else:
            self.battery = None
        self.wdt = machine.WDT(timeout=_WDT_MS)
        self.serial = Stdin()
        self.reset = machine.reset
        self.rand = random.random


def main():
    import asyncio
    from firmware.runtime.app import Runtime
    settings = Settings("/settings.json")
    if settings.status != "ok":
        print("# settings:", settings.status, "- defaults in use")
    gc.collect()
    rt = Runtime(Hardware(settings), settings, BootGuard("/boots"))
    asyncio.run(rt.run())


main()
