"""Check a board file against its chip: one clear problem per broken rule, naming pin and use.

    python -m hardware.check hardware/boards/*.json    (no argument: every shipped board)

Exits 0 when every board passes, 1 when one has a problem, 2 when a file cannot be read.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

from hardware.chips import CHIPS, Chip
from hardware.model import READERS, Wire, address, load, reader_address, shipped, wires
from hardware.schema import structure


@dataclass(frozen=True)
class Problem:
    rule: str  # e.g. "flash-pin", "strapping", "pin-twice", "missing-key"
    message: str
    pin: int | None = None

    def __str__(self) -> str:
        return self.message


def _use(w: Wire) -> str:
    return "%s (%s, %s)" % (w.function, w.device, w.module_pin)


def _pin_rules(chip: Chip, module: dict[int, str], wifi: bool, w: Wire) -> list[Problem]:
    p, use = w.gpio, _use(w)
    assert p is not None
    out = []

    def bad(rule, why):
        out.append(Problem(rule, "GPIO%d: %s; used for %s" % (p, why, use), p))

    if p not in chip.gpios:
        bad("no-such-pin", "no such GPIO on the %s" % chip.name)
    elif p in chip.flash:
        bad("flash-pin", "wired to the module's SPI flash/PSRAM, never usable")
    elif p in module:
        bad("flash-pin", "wired to the module's %s, never usable" % module[p])
    elif p in chip.console:
        bad("console-pin", "%s, kept free for the technician's serial console"
            % chip.console[p])
    elif p in chip.usb:
        bad("usb-pin", "%s, kept for the USB console" % chip.usb[p])
    if p in chip.input_only:
        if w.direction in ("out", "io"):
            bad("input-only", "input only, it cannot drive an output")
        if w.pull == "internal-up":
            bad("input-only", "input only, it has no internal pull-up (fit an external one)")
    strap = chip.straps.get(p)
    if strap and strap.boot:
        wrong = w.levels - {strap.boot}
        if wrong:
            bad("strapping", "strapping pin (%s), but this circuit can hold it %s at boot"
                % (strap.role, "/".join(sorted(wrong))))
    if w.direction == "adc":
        if p not in chip.adc1 | chip.adc2:
            bad("not-adc", "not an ADC pin")
        elif p in chip.adc2 and wifi:
            bad("adc2-wifi", "ADC2 pin, unreadable while Wi-Fi is on (use an ADC1 pin)")
    return out


def _twice(ws: list[Wire]) -> list[Problem]:
    by_pin: dict[int, dict[str, Wire]] = {}
    for w in ws:
        if w.gpio is not None:
            key = w.share or "%s.%s" % (w.device, w.module_pin)
            by_pin.setdefault(w.gpio, {})[key] = w
    return [Problem("pin-twice", "GPIO%d: used twice: %s" % (p, " and ".join(
        _use(w) for w in uses.values())), p)
        for p, uses in sorted(by_pin.items()) if len(uses) > 1]


def _bus_rules(board: dict) -> list[Problem]:
    out, users = [], {}
    r = board["reader"]
    users.setdefault(r["bus"], []).append((r["model"] + " reader", reader_address(board)))
    if board.get("rtc"):
        users.setdefault(board["rtc"]["bus"], []).append(
            (board["rtc"]["model"] + " RTC", address(board["rtc"]["address"])))
    for name, devs in users.items():
        t = board["buses"][name]["type"]
        if t == "uart" and len(devs) > 1:
            out.append(Problem("bus", "%s: a UART has one device, not %s"
                               % (name, " and ".join(d for d, _ in devs))))
        seen: dict[int, str] = {}
        for dev, addr in devs if t == "i2c" else ():
            if addr in seen:
                out.append(Problem("i2c-address", "%s: %s and %s both answer at 0x%02X"
                                   % (name, seen[addr], dev, addr)))
            seen[addr] = dev
    return out


def _battery(chip: Chip, board: dict) -> list[Problem]:
    bat = board.get("battery")
    if not bat:
        return []
    out = []
    ratio = (bat["r_top_kohm"] + bat["r_bottom_kohm"]) / bat["r_bottom_kohm"]
    if abs(ratio - bat["ratio"]) > 0.01:
        out.append(Problem("battery", "GPIO%d: battery ratio %g but the resistors give %.3g"
                           % (bat["adc"], bat["ratio"], ratio), bat["adc"]))
    if 4200 / ratio > chip.adc_max_mv:
        out.append(Problem("battery", "GPIO%d: a full cell (4.2 V) reads %d mV, over the "
                           "ADC's %d mV" % (bat["adc"], 4200 / ratio, chip.adc_max_mv),
                           bat["adc"]))
    return out


def check_board(data: dict) -> list[Problem]:
    """Every problem of one board (empty: it may be built and flashed)."""
    problems = [Problem(rule, msg) for rule, msg in structure(data, CHIPS, READERS)]
    if problems:
        return problems  # the pin rules need a complete board
    chip = CHIPS[data["chip"]]
    module = chip.modules[data["module"]]
    ws = wires(data)
    for w in ws:
        if w.gpio is not None:
            problems += _pin_rules(chip, module, data["wifi"], w)
    return problems + _twice(ws) + _bus_rules(data) + _battery(chip, data)


def check_file(path: str | Path) -> list[Problem]:
    data = load(path)
    problems = check_board(data)
    if isinstance(data, dict) and data.get("name") not in (None, Path(path).stem):
        problems.append(Problem("name", "name %r differs from the file name %r"
                                % (data["name"], Path(path).stem)))
    return problems


def main(argv: list[str] | None = None) -> int:
    paths = (sys.argv[1:] if argv is None else argv) or [str(p) for p in shipped()]
    failed = 0
    for path in paths:
        try:
            problems = check_file(path)
        except (OSError, ValueError) as e:
            print("%s: cannot read: %s" % (path, e), file=sys.stderr)
            return 2
        for p in problems:
            print("%s: %s" % (path, p))
        print("%s: %s" % (path, "ok" if not problems else "%d problem(s)" % len(problems)))
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
