"""firmware/main.py builds the box's hardware for every generated board (fake `machine`)."""
from __future__ import annotations

import importlib
import sys
import types

import pytest

from firmware import board

CALLS: list[tuple] = []


class _Part:
    def __init__(self, *args, **kw):
        CALLS.append((type(self).__name__, args, kw))

    def __getattr__(self, name):
        return lambda *a, **k: None


class Pin(_Part):
    OUT, IN, PULL_UP = 1, 0, 2


class I2C(_Part):
    def scan(self):
        return [0x68, 0x24]


class ADC(_Part):
    ATTN_11DB = 3


def fake_modules(monkeypatch):
    machine = types.ModuleType("machine")
    for name in ("PWM", "UART", "SPI", "RTC", "WDT"):
        setattr(machine, name, type(name, (_Part,), {}))
    machine.Pin, machine.I2C, machine.ADC = Pin, I2C, ADC
    machine.unique_id = lambda: b"\x01\x02\x03\x04\x05\x06"
    machine.reset = lambda: None
    network = types.ModuleType("network")
    network.STA_IF = 0
    network.WLAN = type("WLAN", (_Part,), {})
    neopixel = types.ModuleType("neopixel")
    neopixel.NeoPixel = type("NeoPixel", (_Part,), {})
    for mod in (machine, network, neopixel):
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    sys.modules.pop("firmware.main", None)
    main = importlib.import_module("firmware.main")
    monkeypatch.setattr(main, "Stdin", lambda: None)
    return main


@pytest.mark.parametrize("name", sorted(board.BOARDS))
def test_hardware_is_built_from_the_board_file(name, monkeypatch, tmp_path):
    from firmware.runtime.settings import Settings

    main = fake_modules(monkeypatch)
    settings = Settings(str(tmp_path / "settings.json"))
    settings.set("board", name)
    CALLS.clear()
    hw = main.Hardware(settings)
    pins = board.get(name)
    made = {(kind, kw.get("tx"), kw.get("rx")) for kind, _, kw in CALLS}
    if pins.READER == "PN532":
        assert hw.reader.__class__.__name__ == "PN532Reader"
        if pins.READER_BUS == "uart":
            assert ("UART", pins.READER_TX, pins.READER_RX) in made
    elif pins.READER in ("WS1850S", "RC522"):
        assert hw.reader.__class__.__name__ == "RC522Reader"  # read path: tests/drivers
    else:
        with pytest.raises(OSError, match="no driver"):
            hw.reader.read_uid()
    assert (hw.battery is None) == (pins.BAT_ADC is None)
    assert (hw.indicator.buzzer is None) == (pins.BUZZER is None)
    hw.indicator.set("amber", 2000)  # every LED kind takes every colour


def test_an_unknown_board_name_falls_back_to_the_default(monkeypatch, tmp_path, capsys):
    from firmware.runtime.settings import Settings

    main = fake_modules(monkeypatch)
    settings = Settings(str(tmp_path / "settings.json"))
    settings.set("board", "no-such-board")
    assert main.pins_for(settings) is board.get(None)
    assert "unknown board 'no-such-board'" in capsys.readouterr().out
