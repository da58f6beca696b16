"""What each supported chip allows on its pins, as data (sources in docs/hardware.md).

`boot` is the level a strapping pin must read while the chip leaves reset: None means the pin
is a strapping pin whose level we need not constrain (it only matters with eFuses we never
burn). Module tables add the pins a given module wires internally (flash, PSRAM).
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Strap:
    role: str
    boot: str | None  # "high", "low" or None (no constraint)


@dataclass(frozen=True)
class Chip:
    name: str
    gpios: frozenset[int]
    flash: frozenset[int]
    input_only: frozenset[int]
    straps: dict[int, Strap]
    adc1: frozenset[int]
    adc2: frozenset[int]
    console: dict[int, str]  # UART0: the REPL and esptool's port
    usb: dict[int, str] = field(default_factory=dict)
    modules: dict[str, dict[int, str]] = field(default_factory=dict)
    adc_max_mv: int = 3100  # 11 dB attenuation, top of the usable range


def _r(a: int, b: int) -> frozenset[int]:
    return frozenset(range(a, b + 1))


ESP32 = Chip(
    name="esp32",
    gpios=_r(0, 19) | _r(21, 23) | _r(25, 27) | _r(32, 39),
    flash=_r(6, 11),
    input_only=_r(34, 39),
    straps={
        0: Strap("GPIO0, boot mode: low at reset enters the serial bootloader", "high"),
        2: Strap("GPIO2, boot mode: must be low or floating to enter the bootloader", "low"),
        5: Strap("GPIO5, SDIO timing: pulled up, must be high at boot", "high"),
        12: Strap("MTDI, flash voltage: must be low at boot on 3.3 V flash modules", "low"),
        15: Strap("MTDO, boot log and SDIO timing: pulled up, must be high at boot", "high"),
    },
    adc1=_r(32, 39),
    adc2=frozenset({0, 2, 4, 12, 13, 14, 15, 25, 26, 27}),
    console={1: "UART0 TX (REPL, esptool)", 3: "UART0 RX (REPL, esptool)"},
    modules={
        "esp32-wroom-32": {},
        "esp32-wrover": {16: "PSRAM (WROVER)", 17: "PSRAM (WROVER)"},
        "esp32-pico-d4": {16: "embedded flash (PICO-D4)", 17: "embedded flash (PICO-D4)"},
    },
)

ESP32S3 = Chip(
    name="esp32s3",
    gpios=_r(0, 21) | _r(26, 48),
    flash=_r(26, 32),
    input_only=frozenset(),
    straps={
        0: Strap("GPIO0, boot mode: low at reset enters the serial bootloader", "high"),
        3: Strap("GPIO3, JTAG source: only read when the eFuse asks for it", None),
        45: Strap("GPIO45, VDD_SPI voltage: must be low at boot for 3.3 V flash", "low"),
        46: Strap("GPIO46, boot mode and ROM log: must be low to enter the bootloader", "low"),
    },
    adc1=_r(1, 10),
    adc2=_r(11, 20),
    console={43: "UART0 TX (REPL, esptool)", 44: "UART0 RX (REPL, esptool)"},
    usb={19: "native USB D- (USB serial/JTAG)", 20: "native USB D+ (USB serial/JTAG)"},
    modules={
        "esp32-s3-wroom-1": {},
        "esp32-s3-wroom-1-octal": {n: "octal PSRAM/flash" for n in range(33, 38)},
    },
)

CHIPS = {c.name: c for c in (ESP32, ESP32S3)}
