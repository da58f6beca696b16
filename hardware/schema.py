"""The shape of a board file: required keys, their types, references between sections.

Returns (rule, message) pairs; the pin rules in check.py run only on a complete board.
"""
from numbers import Real

_TOP = {"name": str, "title": str, "chip": str, "module": str, "wifi": bool, "buses": dict,
        "reader": dict, "led": dict, "buzzer": (dict, type(None)), "parts": list}
_OPTIONAL = {"rtc": (dict, type(None)), "battery": (dict, type(None)),
             "tamper": (dict, type(None)), "sos_button": (dict, type(None)), "status": str,
             "notes": str}
_BUS = {"i2c": ("id", "sda", "scl", "freq"), "uart": ("id", "tx", "rx", "baud"),
        "spi": ("id", "sck", "mosi", "miso", "baudrate")}
_PINS = {"sda", "scl", "tx", "rx", "sck", "mosi", "miso", "cs", "reset", "pin", "green", "red",
         "adc"}
_STATUS = ("recommended", "supported", "least-reliable")


def _keys(where: str, d: dict, keys) -> list[tuple[str, str]]:
    out = [("missing-key", "%s: missing required key %r" % (where, k)) for k in keys
           if k not in d]
    for k in keys:
        v = d.get(k)
        if k in _PINS and k in d and v is not None and (type(v) is not int or v < 0):
            out.append(("bad-value", "%s: %s must be a GPIO number, got %r" % (where, k, v)))
    return out


def _types(data: dict) -> list[tuple[str, str]]:
    out = [("missing-key", "board: missing required key %r" % k) for k in _TOP if k not in data]
    for k, t in list(_TOP.items()) + list(_OPTIONAL.items()):
        if k in data and not isinstance(data[k], t):
            out.append(("bad-value", "board: %s has the wrong type (%s)"
                        % (k, type(data[k]).__name__)))
    if data.get("status", "supported") not in _STATUS:
        out.append(("bad-value", "board: status must be one of %s" % ", ".join(_STATUS)))
    return out


def _bus_ref(data: dict, where: str, name, allowed) -> list[tuple[str, str]]:
    bus = data["buses"].get(name)
    if not isinstance(bus, dict):
        return [("bus", "%s: bus %r is not declared in buses" % (where, name))]
    if bus.get("type") not in allowed:
        return [("bus", "%s: bus %r is %s, expected %s"
                 % (where, name, bus.get("type"), " or ".join(allowed)))]
    return []


def _devices(data: dict, readers: dict) -> list[tuple[str, str]]:
    r = data["reader"]
    out = _keys("reader", r, ("model", "bus"))
    if out:
        return out
    if r["model"] not in readers:
        return [("bad-value", "reader: unknown model %r (known: %s)"
                 % (r["model"], ", ".join(readers)))]
    out += _bus_ref(data, "reader", r["bus"], readers[r["model"]]["buses"])
    if not out and data["buses"][r["bus"]]["type"] == "spi":
        out += _keys("reader", r, ("cs",))
    out += _keys("reader", r, ("reset",) if "reset" in r else ())
    led = data["led"]
    kind = led.get("type")
    if kind not in ("gpio", "ws2812"):
        out.append(("bad-value", "led: type must be gpio or ws2812, got %r" % kind))
    else:
        out += _keys("led", led, ("green", "red") if kind == "gpio" else ("pin", "count"))
    if data["buzzer"] is not None:
        out += _keys("buzzer", data["buzzer"], ("pin",))
    if data.get("rtc"):
        out += _keys("rtc", data["rtc"], ("model", "bus", "address"))
        if "bus" in data["rtc"]:
            out += _bus_ref(data, "rtc", data["rtc"]["bus"], ("i2c",))
    if data.get("battery"):
        out += _keys("battery", data["battery"], ("adc", "ratio", "r_top_kohm", "r_bottom_kohm"))
    if data.get("tamper"):
        out += _keys("tamper", data["tamper"], ("pin", "pull"))
        if data["tamper"].get("pull") not in ("internal-up", "external-up"):
            out.append(("bad-value", "tamper: pull must be internal-up or external-up"))
    if data.get("sos_button"):
        out += _keys("sos_button", data["sos_button"], ("pin", "pull"))
        if data["sos_button"].get("pull") not in ("internal-up", "external-up"):
            out.append(("bad-value", "sos_button: pull must be internal-up or external-up"))
    return out


def _parts(parts: list) -> list[tuple[str, str]]:
    if not parts:
        return [("missing-key", "parts: the parts list is empty")]
    out = []
    for i, p in enumerate(parts):
        where = "parts[%d]" % i
        if not isinstance(p, dict):
            out.append(("bad-value", "%s: must be an object" % where))
            continue
        out += _keys(where, p, ("part", "qty", "unit_eur", "description"))
        if type(p.get("qty", 1)) is not int or p.get("qty", 1) < 1:
            out.append(("bad-value", "%s: qty must be a whole number >= 1" % where))
        cost = p.get("unit_eur", 0)
        if not isinstance(cost, Real) or isinstance(cost, bool) or cost < 0:
            out.append(("bad-value", "%s: unit_eur must be a number >= 0" % where))
    return out


def structure(data, chips: dict, readers: dict) -> list[tuple[str, str]]:
    if not isinstance(data, dict):
        return [("bad-value", "board: the file must hold one JSON object")]
    out = _types(data)
    if out:
        return out
    if data["chip"] not in chips:
        return [("bad-value", "board: unknown chip %r (known: %s)"
                 % (data["chip"], ", ".join(chips)))]
    if data["module"] not in chips[data["chip"]].modules:
        out.append(("bad-value", "board: unknown %s module %r (known: %s)" % (
            data["chip"], data["module"], ", ".join(chips[data["chip"]].modules))))
    for name, bus in data["buses"].items():
        t = bus.get("type") if isinstance(bus, dict) else None
        if t not in _BUS:
            out.append(("bus", "buses.%s: type must be one of %s" % (name, ", ".join(_BUS))))
        else:
            out += _keys("buses." + name, bus, _BUS[t])
    if out:
        return out
    return _devices(data, readers) + _parts(data["parts"])
