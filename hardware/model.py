"""A board file as the list of its wires: what the checker judges and the wiring table prints.

Each wire says which module pin goes to which ESP32 pin, what that pin then does, and which
levels the attached circuit can hold it at while the chip leaves reset (the ESP32's own
outputs are not driving yet then, so only pull-ups, peers and switches count).
"""
import json
from dataclasses import dataclass
from pathlib import Path

BOARDS_DIR = Path(__file__).resolve().parent / "boards"
HIGH = frozenset({"high"})
LOW = frozenset({"low"})
NONE: frozenset[str] = frozenset()
EITHER = frozenset({"high", "low"})

# reader model -> the buses it can use and the I2C address it answers on
READERS = {
    "PN532": {"buses": ("uart", "spi", "i2c"), "address": 0x24},
    "WS1850S": {"buses": ("i2c",), "address": 0x28},
}


@dataclass(frozen=True)
class Wire:
    device: str
    module_pin: str
    target: str  # "GPIO16", "3V3", "5V", "GND", "battery +"
    gpio: int | None = None
    function: str = ""  # what the ESP32 pin does, e.g. "uart2 RX"
    direction: str = "power"  # "in", "out", "io", "adc", "power"
    levels: frozenset[str] = NONE  # levels the circuit may impose at reset
    pull: str | None = None  # "internal-up" / "external-up"
    share: str | None = None  # same key = the same bus line, allowed on one pin
    colour: str = ""
    note: str = ""


def load(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def shipped() -> list[Path]:
    return sorted(BOARDS_DIR.glob("*.json"))


def address(value: int | str) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def reader_address(board: dict) -> int:
    r = board["reader"]
    return address(r.get("address", READERS[r["model"]]["address"]))


def _gpio(device, module_pin, pin, function, direction, levels, colour, note="", **kw):
    return Wire(device, module_pin, "GPIO%d" % pin, pin, function, direction, levels,
                colour=colour, note=note, **kw)


def _bus_wires(device: str, name: str, bus: dict, labels: dict[str, str],
               i2c_colours: tuple[str, str] = ("blue", "yellow")) -> list[Wire]:
    """The signal wires of one device on one bus; labels maps signal -> module pin name."""
    t = bus["type"]
    if t == "i2c":
        note = "shared I2C bus, pull-ups on the modules"
        return [_gpio(device, labels["sda"], bus["sda"], name + " SDA", "io", HIGH,
                      i2c_colours[0], note, share=name + ".sda"),
                _gpio(device, labels["scl"], bus["scl"], name + " SCL", "io", HIGH,
                      i2c_colours[1], note, share=name + ".scl")]
    if t == "uart":
        return [_gpio(device, labels["tx"], bus["rx"], name + " RX", "in", HIGH, "green",
                      "module TX to ESP32 RX (crossed)", share=name + ".rx"),
                _gpio(device, labels["rx"], bus["tx"], name + " TX", "out", HIGH, "white",
                      "ESP32 TX to module RX (crossed)", share=name + ".tx")]
    return [_gpio(device, "SCK", bus["sck"], name + " SCK", "out", NONE, "orange",
                  share=name + ".sck"),
            _gpio(device, "MISO", bus["miso"], name + " MISO", "in", HIGH, "blue",
                  share=name + ".miso"),
            _gpio(device, "MOSI", bus["mosi"], name + " MOSI", "out", NONE, "green",
                  share=name + ".mosi")]


def _reader(board: dict) -> list[Wire]:
    r = board["reader"]
    name = r["bus"]
    bus = board["buses"][name]
    dev = r["model"] + " reader"
    if r["model"] == "WS1850S":
        out = [Wire(dev, "5V", "5V", colour="red (Grove)", note="Grove cable"),
               Wire(dev, "GND", "GND", colour="black (Grove)")]
        out += _bus_wires(dev, name, bus, {"sda": "SDA", "scl": "SCL"},
                          ("yellow (Grove)", "white (Grove)"))
    else:
        out = [Wire(dev, "VCC", "3V3", colour="red", note="3.3 V keeps its I/O at 3.3 V"),
               Wire(dev, "GND", "GND", colour="black")]
        out += _bus_wires(dev, name, bus, {"sda": "SDA", "scl": "SCL", "tx": "TXD", "rx": "RXD"})
    if bus["type"] == "spi":
        out.append(_gpio(dev, "SS", r["cs"], name + " CS (reader)", "out", HIGH, "white",
                         "chip select, idles high"))
    if r.get("reset") is not None:
        out.append(_gpio(dev, "RSTPDN", r["reset"], "reader reset", "out", HIGH, "grey",
                         "RSTPDN pad (back of the red module), not RSTO"))
    return out


def _rtc(board: dict) -> list[Wire]:
    rtc = board.get("rtc")
    if not rtc:
        return []
    dev = rtc["model"] + " RTC"
    return [Wire(dev, "VCC", "3V3", colour="red", note="3.3 V, so its pull-ups stay at 3.3 V"),
            Wire(dev, "GND", "GND", colour="black")] + _bus_wires(
        dev, rtc["bus"], board["buses"][rtc["bus"]], {"sda": "SDA", "scl": "SCL"})


def _feedback(board: dict) -> list[Wire]:
    led = board["led"]
    if led["type"] == "ws2812":
        builtin = "built in, no wire" if led.get("builtin") else "5 V, GND to the box's rails"
        out = [_gpio("RGB LED", "DIN", led["pin"], "RGB LED data", "out", NONE, "green",
                     builtin)]
    else:
        out = [_gpio("green LED", "anode via 330 ohm", led["green"], "green LED", "out",
                     LOW, "green", "cathode to GND"),
               _gpio("red LED", "anode via 330 ohm", led["red"], "red LED", "out", LOW,
                     "brown", "cathode to GND")]
    buz = board.get("buzzer")
    if buz:
        out.append(_gpio("buzzer", "driver base via 1 kohm", buz["pin"], "buzzer", "out",
                         LOW, "purple", "NPN transistor, emitter to GND, buzzer to 3V3"))
    return out


def _sensors(board: dict) -> list[Wire]:
    out = []
    bat = board.get("battery")
    if bat:
        out += [Wire("battery divider", "top resistor %g kohm" % bat["r_top_kohm"],
                     "battery +", colour="red"),
                _gpio("battery divider", "mid-point", bat["adc"], "battery sense ADC", "adc",
                      HIGH, "orange", "ratio %g" % bat["ratio"]),
                Wire("battery divider", "bottom resistor %g kohm" % bat["r_bottom_kohm"],
                     "GND", colour="black")]
    tam = board.get("tamper")
    if tam:
        # the switch holds the pin low while the lid is shut, the pull-up high when open
        out += [_gpio("tamper switch", "common", tam["pin"], "tamper switch", "in", EITHER,
                      "white", "closed (pin low) while the lid is shut", pull=tam["pull"]),
                Wire("tamper switch", "NC contact", "GND", colour="black")]
    sos = board.get("sos_button")
    if sos:
        # a push button to GND: the pin reads low while pressed; a 3 s press raises an SOS
        out += [_gpio("SOS button", "contact", sos["pin"], "SOS button", "in", EITHER,
                      "red", "to GND while pressed (3 s: SOS)", pull=sos["pull"]),
                Wire("SOS button", "other contact", "GND", colour="black")]
    return out


def wires(board: dict) -> list[Wire]:
    """Every wire of a structurally valid board, reader first."""
    return _reader(board) + _rtc(board) + _feedback(board) + _sensors(board)
