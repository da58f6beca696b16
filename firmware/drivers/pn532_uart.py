"""PN532 over HSU (high-speed UART, 115200 8N1): moves bytes, nothing else.

`uart` is anything with read(n) and write(buf), plus any() (machine.UART) or in_waiting
(pyserial, so a `serial_for_url("socket://...", timeout=0)` object works as is).
"""
from firmware.ticks import sleep_ms, ticks_diff, ticks_ms

# 0x55 0x55 then zeros: the chip leaves power-down on the first byte and needs the rest of
# the preamble to be idle before a command (user manual, 7.2.11; what ESPHome and Adafruit send)
WAKEUP = b"\x55\x55" + bytes(14)


class PN532UART:
    def __init__(self, uart):
        self._uart = uart
        any_ = getattr(uart, "any", None)
        self._any = any_ if any_ is not None else self._in_waiting

    def _in_waiting(self):
        return self._uart.in_waiting

    def wakeup(self):
        self._uart.write(WAKEUP)
        sleep_ms(2)

    def write(self, frame):
        self._uart.write(frame)

    def ready(self):
        return self._any() > 0

    def read(self, n, timeout_ms):
        out = b""
        start = ticks_ms()
        while len(out) < n:
            if self._any():
                chunk = self._uart.read(n - len(out))
                if chunk:
                    out += chunk
                    continue
            if ticks_diff(ticks_ms(), start) >= timeout_ms:
                break
            sleep_ms(1)
        return out
