"""The board checker: every shipped board passes; each rule rejects a crafted board clearly."""
import copy
import json
import subprocess
import sys

import pytest

from hardware.check import check_board, check_file, main
from hardware.model import load, shipped

REQUIRED = {"esp32-devkitc-pn532-uart", "esp32-devkitc-pn532-spi",
            "esp32-s3-devkitc-pn532-uart", "m5stack-atom-rfid2"}


def board(name="esp32-devkitc-pn532-uart"):
    return copy.deepcopy(load(shipped()[0].parent / (name + ".json")))


def only(problems, rule):
    """The problems of one rule, after checking there is no other."""
    assert problems, "expected a %s problem" % rule
    assert {p.rule for p in problems} == {rule}, [str(p) for p in problems]
    return problems


def test_the_required_boards_ship():
    assert REQUIRED <= {p.stem for p in shipped()}


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_every_shipped_board_passes(path):
    assert check_file(path) == []


def test_flash_pin():
    b = board()
    b["led"]["green"] = 7
    (p,) = only(check_board(b), "flash-pin")
    assert p.pin == 7 and "GPIO7" in str(p) and "green LED" in str(p) and "flash" in str(p)


def test_module_pins_pico_d4_and_octal_psram():
    atom = board("m5stack-atom-rfid2")
    atom["tamper"]["pin"] = 16
    (p,) = only(check_board(atom), "flash-pin")
    assert "GPIO16" in str(p) and "embedded flash" in str(p) and "tamper" in str(p)
    s3 = board("esp32-s3-devkitc-pn532-uart")
    s3["buzzer"]["pin"] = 35
    (p,) = only(check_board(s3), "flash-pin")
    assert "GPIO35" in str(p) and "octal PSRAM" in str(p)


def test_output_on_input_only_pin():
    b = board()
    b["buzzer"]["pin"] = 34
    (p,) = only(check_board(b), "input-only")
    assert "GPIO34" in str(p) and "buzzer" in str(p) and "output" in str(p)


def test_i2c_line_on_input_only_pin():
    b = board()
    b["buses"]["i2c0"]["scl"] = 39
    (p,) = only(check_board(b), "input-only")
    assert "GPIO39" in str(p) and "i2c0 SCL" in str(p)


def test_internal_pull_up_on_input_only_pin():
    b = board()
    b["tamper"]["pin"] = 36
    (p,) = only(check_board(b), "input-only")
    assert "GPIO36" in str(p) and "pull-up" in str(p) and "tamper" in str(p)
    b["tamper"]["pull"] = "external-up"
    assert check_board(b) == []


def test_i2c_line_on_mtdi_is_held_high_at_boot():
    b = board()
    b["buses"]["i2c0"]["sda"] = 12
    (p,) = only(check_board(b), "strapping")
    assert "GPIO12" in str(p) and "MTDI" in str(p) and "i2c0 SDA" in str(p)
    assert "high" in str(p)


def test_tamper_switch_on_gpio0_can_hold_it_low():
    b = board()
    b["tamper"]["pin"] = 0
    (p,) = only(check_board(b), "strapping")
    assert "GPIO0" in str(p) and "bootloader" in str(p) and "low" in str(p)


def test_pull_up_on_a_pin_that_must_be_low():
    b = board()
    b["tamper"]["pin"] = 2
    (p,) = only(check_board(b), "strapping")
    assert "GPIO2" in str(p) and "tamper" in str(p)


def test_strapping_pins_used_with_their_boot_role_pass():
    b = board()
    b["led"]["green"] = 12  # an LED pulls MTDI low, as 3.3 V flash wants
    assert check_board(b) == []
    assert check_board(board("esp32-devkitc-pn532-spi")) == []  # chip select on GPIO5


def test_s3_strapping_pin():
    b = board("esp32-s3-devkitc-pn532-uart")
    b["buses"]["i2c0"]["sda"] = 46
    (p,) = only(check_board(b), "strapping")
    assert "GPIO46" in str(p) and "i2c0 SDA" in str(p)


def test_pin_used_twice():
    b = board()
    b["buzzer"]["pin"] = 26
    (p,) = only(check_board(b), "pin-twice")
    assert "GPIO26" in str(p) and "red LED" in str(p) and "buzzer" in str(p)


def test_shared_i2c_bus_is_one_use():
    b = board("esp32-devkitc-pn532-i2c")
    assert b["reader"]["bus"] == b["rtc"]["bus"] == "i2c0"
    assert check_board(b) == []


def test_same_pins_on_two_buses_are_used_twice():
    b = board("esp32-devkitc-pn532-i2c")
    b["buses"]["i2c1"] = dict(b["buses"]["i2c0"], id=1)
    b["rtc"]["bus"] = "i2c1"
    problems = only(check_board(b), "pin-twice")
    assert {p.pin for p in problems} == {21, 22}
    assert "i2c0 SDA" in str(problems[0]) and "i2c1 SDA" in str(problems[0])


def test_two_devices_at_one_i2c_address():
    b = board("esp32-devkitc-pn532-i2c")
    b["rtc"]["address"] = "0x24"
    (p,) = only(check_board(b), "i2c-address")
    assert "0x24" in str(p) and "PN532" in str(p) and "DS3231" in str(p)


def test_battery_on_adc2_with_wifi():
    b = board()
    b["battery"]["adc"] = 14
    (p,) = only(check_board(b), "adc2-wifi")
    assert "GPIO14" in str(p) and "battery" in str(p) and "Wi-Fi" in str(p)
    b["wifi"] = False
    assert check_board(b) == []


def test_battery_on_a_pin_without_adc():
    b = board()
    b["battery"]["adc"] = 23
    (p,) = only(check_board(b), "not-adc")
    assert "GPIO23" in str(p) and "battery" in str(p)


def test_battery_divider_must_match_its_ratio_and_range():
    b = board()
    b["battery"]["ratio"] = 3.0
    (p,) = only(check_board(b), "battery")
    assert "ratio 3" in str(p)
    b["battery"].update(ratio=1.1, r_top_kohm=10, r_bottom_kohm=100)
    (p,) = only(check_board(b), "battery")
    assert "4.2 V" in str(p)


def test_console_usb_and_missing_pins():
    b = board()
    b["tamper"]["pin"] = 1
    (p,) = only(check_board(b), "console-pin")
    assert "GPIO1" in str(p) and "UART0" in str(p)
    s3 = board("esp32-s3-devkitc-pn532-uart")
    s3["buzzer"]["pin"] = 19
    (p,) = only(check_board(s3), "usb-pin")
    assert "GPIO19" in str(p) and "USB" in str(p)
    b = board()
    b["led"]["red"] = 20
    (p,) = only(check_board(b), "no-such-pin")
    assert "GPIO20" in str(p)


@pytest.mark.parametrize("key", ["name", "chip", "module", "wifi", "buses", "reader", "led",
                                 "buzzer", "parts"])
def test_missing_required_key(key):
    b = board()
    del b[key]
    (p,) = only(check_board(b), "missing-key")
    assert repr(key) in str(p)


def test_missing_nested_keys():
    b = board()
    del b["reader"]["bus"]
    del b["parts"][0]["unit_eur"]
    problems = only(check_board(b), "missing-key")
    text = " / ".join(map(str, problems))
    assert "reader: missing required key 'bus'" in text
    assert "parts[0]: missing required key 'unit_eur'" in text
    b = board("esp32-devkitc-pn532-spi")
    del b["reader"]["cs"]
    (p,) = only(check_board(b), "missing-key")
    assert "'cs'" in str(p)


def test_unknown_bus_reference_and_wrong_bus_type():
    b = board()
    b["rtc"]["bus"] = "i2c9"
    (p,) = only(check_board(b), "bus")
    assert "i2c9" in str(p)
    b = board("m5stack-atom-rfid2")
    b["buses"]["uart1"] = {"type": "uart", "id": 1, "tx": 22, "rx": 19, "baud": 115200}
    b["reader"]["bus"] = "uart1"  # the WS1850S unit only speaks I2C
    (p,) = only(check_board(b), "bus")
    assert "uart" in str(p)


def test_bad_values():
    b = board()
    b["led"]["green"] = "25"
    b["parts"][0]["qty"] = 0
    problems = only(check_board(b), "bad-value")
    assert any("GPIO number" in str(p) for p in problems)
    assert any("qty" in str(p) for p in problems)
    assert only(check_board([]), "bad-value")


def test_main_exit_codes_and_messages(tmp_path, capsys):
    assert main([str(p) for p in shipped()]) == 0
    b = board()
    b["led"]["green"] = 7
    bad = tmp_path / "esp32-devkitc-pn532-uart.json"
    bad.write_text(json.dumps(b))
    assert main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "GPIO7" in out and "1 problem(s)" in out
    assert main([str(tmp_path / "nope.json")]) == 2


def test_name_must_match_the_file(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(board()))
    (p,) = only(check_file(path), "name")
    assert "other" in str(p)


def test_module_cli_checks_every_shipped_board():
    proc = subprocess.run([sys.executable, "-m", "hardware.check"], capture_output=True,
                          text=True, cwd=shipped()[0].parents[2])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": ok") == len(shipped())
