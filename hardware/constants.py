"""firmware/board.py from the board files: one class of constants per board, picked by name."""
import json

from hardware.model import READERS, address, reader_address

DEFAULT_BOARD = "esp32-devkitc-pn532-uart"

HEADER = '''\
# GENERATED from hardware/boards/*.json by hardware/constants.py: do not edit by hand.
# Regenerate: .venv/bin/python -m hardware.generate   (tests/hardware fails when out of date)
"""Board constants, one class per supported board (docs/hardware.md). Pick one by name:

    from firmware import board
    pins = board.get(settings.get("board"))  # None: the default board
    machine.Pin(pins.LED_GREEN, machine.Pin.OUT)

Every class has every name; None means the board has no such part.
"""
try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

DEFAULT = "%s"

# I2C addresses of the parts. MicroPython's const() names are module-wide (one value per
# name per module), so the per-board values below are plain class attributes.
%s
'''

FOOTER = '''

def get(name=None):
    """The constants class of board `name` (None: DEFAULT); ValueError if unknown."""
    try:
        return BOARDS[name or DEFAULT]
    except KeyError:
        raise ValueError("unknown board %r; known: " % name + ", ".join(sorted(BOARDS)))
'''


def class_name(board_name: str) -> str:
    return "".join(part.capitalize() for part in board_name.replace("_", "-").split("-"))


def constants(board: dict) -> dict:
    """Name -> value, the same names for every board (None: no such part)."""
    r, buses = board["reader"], board["buses"]
    rbus = buses[r["bus"]]
    i2c_names = sorted(n for n, b in buses.items() if b["type"] == "i2c")
    if len(i2c_names) > 1:
        raise ValueError("%s: the firmware drives one I2C bus, the board declares %s"
                         % (board["name"], ", ".join(i2c_names)))
    i2c = buses[i2c_names[0]] if i2c_names else {}
    uart = rbus if rbus["type"] == "uart" else {}
    spi = rbus if rbus["type"] == "spi" else {}
    led, buz = board["led"], board.get("buzzer") or {}
    bat, tam, rtc = board.get("battery") or {}, board.get("tamper") or {}, board.get("rtc")
    return {
        "NAME": board["name"], "CHIP": board["chip"],
        "READER": r["model"], "READER_BUS": rbus["type"],
        "READER_ADDR": reader_address(board) if rbus["type"] == "i2c" else None,
        "READER_UART": uart.get("id"), "READER_TX": uart.get("tx"),
        "READER_RX": uart.get("rx"), "READER_BAUD": uart.get("baud"),
        "SPI_ID": spi.get("id"), "SPI_SCK": spi.get("sck"), "SPI_MOSI": spi.get("mosi"),
        "SPI_MISO": spi.get("miso"), "SPI_BAUD": spi.get("baudrate"),
        "READER_CS": r.get("cs"), "READER_RST": r.get("reset"),
        "I2C_ID": i2c.get("id"), "I2C_SDA": i2c.get("sda"), "I2C_SCL": i2c.get("scl"),
        "I2C_FREQ": i2c.get("freq"),
        "RTC": bool(rtc), "RTC_ADDR": address(rtc["address"]) if rtc else None,
        "LED": led["type"], "LED_GREEN": led.get("green"), "LED_RED": led.get("red"),
        "LED_RGB": led.get("pin"), "LED_COUNT": led.get("count"),
        "BUZZER": buz.get("pin"),
        "BAT_ADC": bat.get("adc"), "BAT_RATIO": float(bat["ratio"]) if bat else None,
        "TAMPER": tam.get("pin"), "TAMPER_PULL": tam.get("pull"),
        "SOS_BUTTON": (board.get("sos_button") or {}).get("pin"),
        "SOS_PULL": (board.get("sos_button") or {}).get("pull"),
    }


# const name -> address, one per part model that talks I2C
ADDRESSES = {"ADDR_" + model: info["address"] for model, info in READERS.items()}
ADDRESSES["ADDR_DS3231"] = 0x68


def _value(name: str, v) -> str:
    if name.endswith("_ADDR") and v is not None:
        known = [k for k, a in ADDRESSES.items() if a == v]
        return known[0] if known else "0x%02X" % v
    return json.dumps(v) if isinstance(v, str) else repr(v)


def firmware_module(boards: list[dict]) -> str:
    """The text of firmware/board.py for these boards (sorted by name)."""
    boards = sorted(boards, key=lambda b: b["name"])
    if DEFAULT_BOARD not in {b["name"] for b in boards}:
        raise ValueError("the default board %s is missing" % DEFAULT_BOARD)
    addrs = "\n".join("%s = const(0x%02X)" % kv for kv in ADDRESSES.items())
    out = [HEADER % (DEFAULT_BOARD, addrs)]
    for b in boards:
        out.append("\nclass %s:" % class_name(b["name"]))
        out += ["    %s = %s" % (k, _value(k, v)) for k, v in constants(b).items()]
        out.append("")
    out.append("\nBOARDS = {")
    out += ["    %s: %s," % (json.dumps(b["name"]), class_name(b["name"])) for b in boards]
    out.append("}\n")
    return "\n".join(out) + FOOTER
