"""Wiring tables for technicians: module pin -> ESP32 pin, a wire colour, notes."""
from hardware.model import reader_address, wires

# the position of the 2-way DIP switch on the PN532 (V3 layout) for each bus
PN532_SWITCHES = {"uart": "HSU: switch 1 OFF, switch 2 OFF",
                  "i2c": "I2C: switch 1 ON, switch 2 OFF",
                  "spi": "SPI: switch 1 OFF, switch 2 ON"}


def wiring_table(board: dict) -> str:
    """A markdown table, one row per wire, reader first."""
    lines = ["| from (module pin) | to (ESP32) | wire | notes |", "|---|---|---|---|"]
    for w in wires(board):
        to = "%s (%s)" % (w.target, w.function) if w.gpio is not None else w.target
        lines.append("| %s %s | %s | %s | %s |" % (w.device, w.module_pin, to, w.colour,
                                                    w.note))
    return "\n".join(lines) + "\n"


def reader_setup(board: dict) -> str:
    """One line: the reader, its bus and what to set on the module before wiring it."""
    r = board["reader"]
    bus = board["buses"][r["bus"]]
    what = "%s on %s (%s" % (r["model"], r["bus"], bus["type"].upper())
    if bus["type"] == "uart":
        what += ", %d baud)" % bus["baud"]
    elif bus["type"] == "i2c":
        what += ", address 0x%02X)" % reader_address(board)
    else:
        what += ", %d Hz)" % bus["baudrate"]
    if r["model"] == "PN532":
        what += "; DIP switch %s" % PN532_SWITCHES[bus["type"]]
    return what
