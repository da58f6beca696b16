"""The runtime as a whole, on fake hardware: the main loop's tasks, safe mode, the
technician console, the watchdog, and the asyncio loop on CPython."""
import asyncio
import json
import time

import pytest

from firmware.runtime.app import Runtime
from firmware.runtime.console import COMMANDS, LinePort, split
from firmware.runtime.safemode import BootGuard
from firmware.runtime.settings import Settings
from tests.runtime.fakes import Hw, Serial

A = bytes.fromhex("04A1B2C3D4E5F6")


def settings(tmp_path, **values):
    s = Settings(str(tmp_path / "settings.json"))
    for k, v in {"ssid": "home", "password": "secret12", "host": "broker.local", **values}.items():
        s.set(k, v)
    return s


def runtime(tmp_path, hw=None, boots=1, **values):
    hw = hw or Hw()
    guard = BootGuard(str(tmp_path / "boots"))
    for _ in range(boots):
        guard.boot()
    rt = Runtime(hw, settings(tmp_path, **values), guard, journal_path=str(tmp_path / "j"),
                 planning_path=str(tmp_path / "planning.json"), start=0)
    return hw, rt


def steps(rt, start, end, every=50):
    for now in range(start, end, every):
        if rt.taps is not None:
            rt.reader_step(now)
        if now % 100 == 0:
            rt.net_step(now)
        rt.console_step(now)
        if now % 1000 == 0:
            rt.main_step(now)
        rt.hw.run_network(rt, every)  # the MQTT client's task, on the fake clock


def ask(rt, hw, line, now=0):
    n = len(hw.serial.out)
    hw.serial.type(line + "\r\n")
    rt.console_step(now)
    out = "".join(hw.serial.out[n:])
    assert out.endswith("\n") and out.count("\n") == 1, out
    return out[:-1]


# -- the loop --------------------------------------------------------------------------------------
def test_tap_to_fleet_ack_through_the_loop(tmp_path):
    hw, rt = runtime(tmp_path)
    steps(rt, 0, 2000)
    assert rt.wifi.up() and rt.link.up() and rt.clock.quality() == "synced"
    hw.reader.queue = [A]
    steps(rt, 2000, 3000)
    assert hw.indicator.calls[0] == ("red", 400)  # no planning yet: not on the allow-list
    assert ("r1", 1) in hw.broker.stored and rt.core.journal.acked == 1
    health = [m[1] for m in hw.broker.published if m[0] == "tg/v1/r1/up/health"]
    assert health and json.loads(health[0])["rd"] == "ok"


def test_planning_file_is_used_and_a_corrupt_one_is_reported(tmp_path):
    t = 1795420000
    (tmp_path / "planning.json").write_text(json.dumps(
        {"version": 1, "tolerance_min": 30, "badges": ["04A1B2C3D4E5F6"],
         "visits": [[7, "04A1B2C3D4E5F6", t, t + 3600]]}))
    hw, rt = runtime(tmp_path)
    hw.reader.queue = [A]
    rt.reader_step(0)
    assert hw.indicator.calls[0] == ("green", 2000) and rt.planning_status == "ok"
    (tmp_path / "planning.json").write_text("{")
    hw2, rt2 = runtime(tmp_path / "x" if (tmp_path / "x").mkdir() is None else None)
    assert rt2.planning_status == "none"
    (tmp_path / "x" / "planning.json").write_text("{")
    _, rt3 = runtime(tmp_path / "x")
    assert rt3.planning_status == "corrupt"


def test_watchdog_fed_while_healthy_starved_when_a_task_stops(tmp_path):
    hw, rt = runtime(tmp_path)
    steps(rt, 0, 5000)
    fed = hw.wdt.feeds
    assert fed >= 4
    # the reader task dies: the others run on, but the WDT is no longer fed
    for now in range(5000, 40000, 100):
        rt.net_step(now)
        rt.console_step(now)
        if now % 1000 == 0:
            rt.main_step(now)
    assert rt.wd.stalled == "reader"
    assert hw.wdt.feeds <= fed + 20  # stall_ms is 20 s
    assert rt.wd.starved > 0


def test_a_hung_network_call_stops_the_feeding(tmp_path):
    hw, rt = runtime(tmp_path)
    steps(rt, 0, 3000)
    fed = hw.wdt.feeds
    rt.main_step(60000)  # the whole loop was stuck in one call for a minute
    assert hw.wdt.feeds == fed


# -- safe mode -------------------------------------------------------------------------------------
def test_three_failed_boots_make_a_safe_boot(tmp_path):
    guard = BootGuard(str(tmp_path / "boots"))
    for n in range(3):
        guard.boot()
        assert not guard.safe()  # boots 1 to 3: normal (they crash before clearing)
    guard.boot()
    assert guard.failed() == 3 and guard.safe()


def test_safe_boot_runs_console_and_wifi_only_and_clears_the_counter(tmp_path):
    hw, rt = runtime(tmp_path, boots=4)
    assert rt.safe and rt.core is None and rt.taps is None and rt.link is None
    assert BootGuard(str(tmp_path / "boots")).count() == 0  # the next reset tries normal
    hw.reader.queue = [A]
    steps(rt, 0, 3000)
    assert hw.reader.queue == [A]  # nobody reads cards
    assert rt.wifi.up() and hw.broker.published == []
    assert hw.wdt.feeds > 0  # fed: net and console are alive
    st = json.loads(ask(rt, hw, "status"))
    assert st["mode"] == "safe" and st["boots"] == 4 and st["rd"] == "off"
    assert ask(rt, hw, "journal") == "error: safe mode: the journal is not open"
    assert json.loads(ask(rt, hw, "selftest"))["reader"] == "PN532 v1.6"


def test_safe_mode_reboots_after_ten_minutes(tmp_path):
    hw, rt = runtime(tmp_path, boots=4)
    for now in range(0, 602000, 1000):
        rt.net_step(now)
        rt.console_step(now)
        rt.main_step(now)
    assert hw.resets == 1


def test_healthy_run_clears_the_boot_counter(tmp_path):
    hw, rt = runtime(tmp_path, boots=3)
    guard = BootGuard(str(tmp_path / "boots"))
    assert guard.count() == 3 and not rt.safe
    steps(rt, 0, 59000)
    assert guard.count() == 3
    steps(rt, 59000, 61050)
    assert guard.count() == 0 and rt.guard.cleared


def test_unhealthy_run_does_not_clear_the_counter(tmp_path):
    hw, rt = runtime(tmp_path, boots=2)
    for now in range(0, 90000, 100):  # the reader task never runs
        rt.net_step(now)
        rt.console_step(now)
        if now % 1000 == 0:
            rt.main_step(now)
    assert BootGuard(str(tmp_path / "boots")).count() == 2


def test_garbage_boot_counter_is_a_fresh_start(tmp_path):
    (tmp_path / "boots").write_text("\x00garbage")
    guard = BootGuard(str(tmp_path / "boots"))
    assert guard.boot() == 1 and not guard.safe()


# -- the technician console ------------------------------------------------------------------------
def test_every_command_answers_one_parseable_line(tmp_path):
    hw, rt = runtime(tmp_path)
    steps(rt, 0, 2000)
    hw.reader.queue = [A]
    steps(rt, 2000, 2500)
    for cmd in COMMANDS:
        if cmd in ("reboot", "maint"):  # maint needs a code: tests/virtual_hw
            continue
        ans = json.loads(ask(rt, hw, cmd))
        assert isinstance(ans, dict), cmd
    st = json.loads(ask(rt, hw, "status"))
    assert {"fw", "id", "mode", "up", "time", "tq", "heap", "wifi", "mqtt", "rd", "jd",
            "settings", "boots"} <= set(st)
    assert (st["mode"], st["wifi"], st["mqtt"], st["tq"], st["settings"]) == (
        "normal", "up", "up", "synced", "ok")
    assert json.loads(ask(rt, hw, "taps"))["taps"][-1]["uid"] == "04A1B2C3D4E5F6"
    j = json.loads(ask(rt, hw, "journal"))
    assert (j["last"], j["acked"], j["depth"], j["torn"], j["corrupt"]) == (1, 1, 0, 0, 0)
    w = json.loads(ask(rt, hw, "wifi"))
    assert w == {"ssid": "home", "password_set": True, "status": "up", "rssi": -61,
                 "ip": "192.168.1.50", "drops": 0}
    b = json.loads(ask(rt, hw, "broker"))
    assert (b["host"], b["port"], b["id"], b["status"]) == ("broker.local", 1883, "r1", "up")
    assert "secret" not in ask(rt, hw, "wifi") + ask(rt, hw, "broker")
    nets = json.loads(ask(rt, hw, "wifi scan"))["networks"]
    assert [(n["ssid"], n["rssi"], n["open"]) for n in nets] == [
        ("Maison Durand", -52, False), ("FreeWifi", -70, True), ("Voisin", -80, False)]
    s = json.loads(ask(rt, hw, "selftest"))
    assert s["reader"] == "PN532 v1.6" and s["ok"] and s["rtc"] == "absent"
    assert json.loads(ask(rt, hw, "counters"))["published"] >= 1
    assert set(json.loads(ask(rt, hw, "help"))["commands"]) == set(COMMANDS)


def test_set_commands_save_and_apply(tmp_path):
    hw, rt = runtime(tmp_path)
    steps(rt, 0, 1000)
    assert ask(rt, hw, 'wifi set "Home Net 5G" "pa ss \\"word\\""') == "ok"
    assert Settings(str(tmp_path / "settings.json")).get("ssid") == "Home Net 5G"
    assert Settings(str(tmp_path / "settings.json")).get("password") == 'pa ss "word"'
    steps(rt, 1000, 1500)
    assert hw.wlan.connects[-1] == ("Home Net 5G", 'pa ss "word"')
    assert ask(rt, hw, "broker set host mqtt.example.org") == "ok"
    assert ask(rt, hw, "broker set port 8883") == "ok"
    steps(rt, 1500, 2000)
    assert hw.net.opened[-1] == ("mqtt.example.org", 8883)
    assert ask(rt, hw, "broker set id box-7") == "ok"
    b = json.loads(ask(rt, hw, "broker"))
    assert b["id"] == "r1" and b["id_setting"] == "box-7" and b["reboot_needed"]
    assert ask(rt, hw, "broker set user r1") == "ok"
    assert ask(rt, hw, "broker set password s3cret") == "ok"
    assert json.loads(ask(rt, hw, "broker"))["password_set"] is True


@pytest.mark.parametrize("line, reason", [
    ("frobnicate", "error: unknown command frobnicate (try help)"),
    ("status now", "error: takes no arguments"),
    ("wifi set", "error: usage: wifi | wifi scan | wifi set <ssid> [password]"),
    ("wifi connect home", "error: usage: wifi | wifi scan | wifi set <ssid> [password]"),
    ("wifi set home short", "error: a WPA password has 8 to 63 characters"),
    ('wifi set ""', "error: ssid is empty"),
    ('wifi set "home', "error: unclosed quote"),
    ("broker set port 0", "error: port must be 1 to 65535"),
    ("broker set port http", "error: port must be an integer"),
    ("broker set id bad/id", "error: id: only A-Z a-z 0-9 - _"),
    ("broker set colour red", "error: usage: broker | broker set host|port|brokers|id|user|password <value>"),
    ("broker set host", "error: usage: broker | broker set host|port|brokers|id|user|password <value>"),
])
def test_bad_commands_are_rejected_with_a_reason(tmp_path, line, reason):
    hw, rt = runtime(tmp_path)
    assert ask(rt, hw, line) == reason
    assert Settings(str(tmp_path / "settings.json")).get("port") == 1883


def test_console_survives_a_failing_command(tmp_path):
    hw, rt = runtime(tmp_path)
    hw.reader.broken = True
    s = json.loads(ask(rt, hw, "selftest"))
    assert s["reader_ok"] is False and "ETIMEDOUT" in s["reader"] and s["ok"] is False
    rt.status = None  # a bug in a handler
    assert ask(rt, hw, "status").startswith("error: TypeError")
    assert json.loads(ask(rt, hw, "help"))


def test_reboot_answers_first_then_resets(tmp_path):
    hw, rt = runtime(tmp_path)
    assert ask(rt, hw, "reboot", now=1000) == "ok"
    rt.main_step(1000)
    assert hw.resets == 0
    rt.main_step(2000)
    assert hw.resets == 1


def test_line_port_handles_crlf_long_lines_and_bad_utf8():
    s = Serial()
    port = LinePort(s)
    s.type("\r\n\nstatus\r\n")
    assert port.poll() == "status" and port.poll() is None
    s.type("x" * 500 + "\nhelp\n")
    assert port.poll() == "help"
    assert s.lines() == ["error: line too long"]
    s.inbuf += b"\xff\xfe\n"
    assert port.poll() is None and s.lines()[-1] == "error: not UTF-8"
    s.type("taps")  # no newline yet
    assert port.poll() is None
    s.type("\n")
    assert port.poll() == "taps"


def test_ctrl_c_and_other_control_bytes_never_reach_a_command_line():
    """Where Ctrl-C does not reach the REPL (a locked box) it is a byte of the console's line:
    it drops the line typed so far; Ctrl-A, Ctrl-E (mpremote's raw REPL) are ignored."""
    s = Serial()
    port = LinePort(s)
    s.type("broker set host evil\x03status\r\n")
    assert port.poll() == "status"
    s.type("\r\x03\x03\r\x01\x05A\x01\x02\x04\x1b\x03help\n")  # mpremote's way in, then help
    assert port.poll() == "help" and s.lines() == []


MKEY = "5a" * 32


def test_a_locked_box_keeps_ctrl_c_from_the_repl_until_maintenance_and_repl(tmp_path):
    from firmware import maintcode

    hw, rt = runtime(tmp_path, mkey=MKEY)
    steps(rt, 0, 2000)  # the clock syncs over NTP: codes can be checked
    assert hw.intr == [-1], "a locked box: Ctrl-C is an ordinary byte"
    assert ask(rt, hw, "repl").startswith("error: locked: repl needs maintenance mode")
    code, _ = maintcode.issue(bytes.fromhex(MKEY), rt.device_id, rt.clock.time(), 7)
    assert json.loads(ask(rt, hw, f"maint {code}"))["maintenance"] is True
    assert hw.intr == [-1], "maintenance alone does not open the REPL"
    assert json.loads(ask(rt, hw, "repl")) == {"repl": True}
    assert hw.intr == [-1, 3], "`repl` in maintenance: Ctrl-C reaches the REPL"
    assert json.loads(ask(rt, hw, "exit")) == {"console": "locked"}
    assert hw.intr == [-1, 3, -1]
    code, _ = maintcode.issue(bytes.fromhex(MKEY), rt.device_id, rt.clock.time(), 8)
    ask(rt, hw, f"maint {code}")
    assert hw.intr == [-1, 3, -1], "a new maintenance session starts without the REPL"


def test_a_safe_boot_does_not_reopen_the_repl_on_a_locked_box(tmp_path):
    hw, rt = runtime(tmp_path, boots=4, mkey=MKEY)
    assert rt.safe
    steps(rt, 0, 500)
    assert hw.intr == [-1]


def test_a_box_without_a_maintenance_key_keeps_its_repl(tmp_path):
    hw, rt = runtime(tmp_path)
    steps(rt, 0, 500)
    assert hw.intr == [3]
    assert json.loads(ask(rt, hw, "repl")) == {"repl": True} and hw.intr == [3]


def test_split():
    assert split('wifi set "a b" c') == ["wifi", "set", "a b", "c"]
    assert split('  x   "" "q\\"q" ') == ["x", "", 'q"q']


def test_corrupt_settings_file_boots_with_defaults_and_says_so(tmp_path):
    (tmp_path / "settings.json").write_text("{garbage")
    s = Settings(str(tmp_path / "settings.json"))
    hw = Hw()
    rt = Runtime(hw, s, BootGuard(str(tmp_path / "boots")), journal_path=str(tmp_path / "j"),
                 planning_path=str(tmp_path / "p.json"), start=0)
    steps(rt, 0, 2000)  # runs: no Wi-Fi, no broker configured, no crash
    st = json.loads(ask(rt, hw, "status"))
    assert st["settings"] == "settings_corrupt" and st["wifi"] == "unconfigured"
    assert st["mqtt"] == "unconfigured" and st["id"] == "r1"
    assert ask(rt, hw, "wifi set home secret123") == "ok"
    assert json.loads(ask(rt, hw, "status"))["settings"] == "ok"


# -- asyncio on CPython ----------------------------------------------------------------------------
@pytest.mark.serial  # a bound in CPU time: alone, after the others
def test_asyncio_loop_runs_tap_to_ack_and_feedback_within_300_ms(tmp_path):
    hw = Hw()
    hw.clock = None  # the MQTT client on the real clock, in the real event loop
    hw, rt = runtime(tmp_path, hw)
    shown = []

    class Reader:
        reads = 0
        at = None

        def read_uid(self):
            self.reads += 1
            if self.reads == 20:
                self.at = time.monotonic()
                return A
            return None

        def version(self):
            return "fake"

    class Ind:
        def set(self, color, hz):
            shown.append((time.monotonic(), color, hz))
    reader = Reader()
    rt.taps.reader = reader
    rt.feedback.out = Ind()
    hw.serial.type("status\n")
    asyncio.run(rt.run(seconds=2.5))
    assert reader.at is not None and shown
    assert shown[0][0] - reader.at < 0.3
    assert rt.core.journal.acked == 1 and ("r1", 1) in hw.broker.stored
    assert json.loads(hw.serial.lines()[0])["mode"] == "normal"
    assert hw.wdt.feeds >= 1 and rt.wd.stalled == ""


def test_the_box_builds_its_updater_and_resets_when_an_update_asks(tmp_path):
    hw = Hw()
    guard = BootGuard(str(tmp_path / "boots"))
    guard.boot()
    rt = Runtime(hw, settings(tmp_path), guard, journal_path=str(tmp_path / "j"),
                 planning_path=str(tmp_path / "planning.json"), start=0,
                 ota_root=str(tmp_path / "ota"))
    updater = rt.core.commands.updater
    assert updater is not None and rt.core.fw == rt.fw  # factory firmware: no slot yet
    rt.main_step(1000)
    assert hw.resets == 0
    updater.reboot = True  # a new version was switched in (or a trial must roll back)
    rt.main_step(2000)
    rt.main_step(3000)
    assert hw.resets == 1


def test_without_an_ota_root_there_is_no_updater(tmp_path):
    hw, rt = runtime(tmp_path)
    assert rt.core.commands.updater is None
