"""The reader box's main loop: asyncio tasks over the runtime's pollable parts.

    reader   every 50 ms: read a card, ReaderCore.tap, feedback (see taps.py)
    net      every 100 ms: Wi-Fi, NTP, health reports, messages to and from the MQTT link
    mqtt     the MQTT client's own task (firmware/runtime/mqtt.py): all its network waits
    console  every 50 ms: the technician's serial commands
    main     every second: uptime, watchdog, boot counter, safe-mode timer, reboot

Each task body is a plain method taking the tick (ms), so tests drive them with a fake clock
and no event loop; only the MQTT client's task needs one. `hw` carries every piece of
hardware (see firmware/main.py): wlan, open_stream (firmware/runtime/net.py), systime, ntp,
rtc, reader, indicator, battery, wdt, serial, reset, rand, default_id, kbd_intr
(micropython.kbd_intr: Ctrl-C's way into the REPL), and optionally clock (ticks() and
sleep_ms() for the MQTT client: a fake one in tests).
"""
import gc
import json

from firmware.runtime.backoff import Backoff
from firmware.runtime.clock import Clock
from firmware.runtime.console import Console, LinePort
from firmware.runtime.health import mem_free
from firmware.ticks import due, ticks_add, ticks_diff, ticks_ms
from firmware.runtime.watchdog import Watchdog
from firmware.runtime.wifi import WifiLink

FW = "0.1.0"
_SAFE_REBOOT_S = 600  # a safe boot tries the full firmware again after this


def log(*args):
    # "# " marks a log line: the console's clients skip them.
    print("#", *args)


def load_planning(path):
    """The planning saved at `path` ({"version", "tolerance_min", "badges", "visits"}), or
    the empty one when there is none or it is unreadable."""
    from firmware.planning import Planning
    try:
        with open(path) as f:
            return Planning.from_config(json.loads(f.read())), "ok"
    except OSError:
        return Planning(), "none"
    except Exception:
        return Planning(), "corrupt"


class Runtime:
    def __init__(self, hw, settings, guard, journal_path="/journal",
                 planning_path="/planning.json", fw=FW, start=None, ota_root=None):
        self.hw = hw
        self.ota_root = ota_root  # None: no updates (tests); the box passes "/ota"
        self.settings = settings
        self.guard = guard
        self.fw = fw
        self.boots = guard.count()
        self.safe = guard.safe()
        if self.safe:
            guard.clear()  # the next reset tries the full firmware again
        s = settings.values
        self.device_id = s["id"] or hw.default_id
        self.reboot_needed = False
        self._reboot_at = None
        self.up_s = 0
        self._now = self._last = ticks_ms() if start is None else start
        self.clock = Clock(hw.systime, hw.ntp, hw.rtc)
        self.clock.start()
        self.wifi = WifiLink(hw.wlan, s["ssid"], s["password"],
                             Backoff(2000, 120000, rand=hw.rand))
        self.core = self.taps = self.link = self.health = self.feedback = None
        self.planning_status = "off"
        if not self.safe:
            self._start_reader(journal_path, planning_path)
        self.console = Console(self)
        self.port = LinePort(hw.serial)
        self._repl = None  # whether Ctrl-C reaches the REPL, as last set
        tasks = ("net", "console") if self.safe else ("net", "console", "reader")
        self.wd = Watchdog(hw.wdt, tasks)
        gc.collect()

    def _start_reader(self, journal_path, planning_path):
        from firmware.journal import Journal
        from firmware.reader import ReaderCore
        from firmware.runtime.feedback import Feedback
        from firmware.runtime.health import HealthReporter
        from firmware.runtime.link import MqttLink
        from firmware.runtime.taps import TapLoop
        gc.collect()
        s = self.settings.values
        planning, self.planning_status = load_planning(planning_path)
        updater = None
        if self.ota_root:
            try:
                from firmware.ota.updater import Updater
                updater = Updater(self.ota_root, self.fw, clock=self.clock)
            except Exception as e:  # no updates rather than no clock-ins
                log("ota: %s" % e)
        journal = Journal(journal_path)
        sos = None
        if getattr(self.hw, "sos_button", None) is not None:  # the board has an SOS button
            from firmware.sos import SosButton
            sos = SosButton(self.device_id, self.clock, self.hw.rand_bytes, store=journal)
        self.core = ReaderCore(self.device_id, journal, planning, self.clock,
                               fw=updater.fw if updater else self.fw, updater=updater, sos=sos)
        self.feedback = Feedback(self.hw.indicator)
        self.taps = TapLoop(self.hw.reader, self.core, self.feedback)
        self.link = MqttLink(self.core, self.hw.open_stream, self.device_id, s["host"],
                             s["port"], s["user"], s["pass"],
                             backoff=Backoff(1000, 60000, rand=self.hw.rand), ca=s["ca"],
                             clock=getattr(self.hw, "clock", None), log=log,
                             brokers=s["brokers"])
        self.health = HealthReporter(self.core, self.link, self.wifi, self.taps,
                                     self.hw.battery, s["health_s"])

    # -- the task bodies --------------------------------------------------------------------
    def reader_step(self, now):
        sos = self.core.sos
        if sos is not None and sos.press(self.hw.sos_button(), now):
            self.feedback.show("sos", now)
        self.taps.poll(now)
        self.feedback.poll(now)
        self.wd.beat(2, now)

    def net_step(self, now):
        w = self.wifi
        w.poll(now)
        online = w.up()
        self.clock.poll(now, online)
        if self.link is not None:
            self.health.poll(now, self.up_s)
            self.link.poll(now, online)
        self.wd.beat(0, now)

    def console_step(self, now):
        self._now = now
        line = self.port.poll()
        if line is not None:
            self.port.answer(self.console.handle(line))
        repl = self.console.maint.repl_allowed(ticks_ms())
        if repl != self._repl:  # a locked box: Ctrl-C is an ordinary byte (maintenance.py)
            self._repl = repl
            self.hw.kbd_intr(3 if repl else -1)
        self.wd.beat(1, now)

    def main_step(self, now):
        self._now = now
        d = ticks_diff(now, self._last)
        if d >= 1000:
            self.up_s += d // 1000
            self._last = ticks_add(self._last, d // 1000 * 1000)
        healthy = self.wd.poll(now)
        if not self.guard.cleared and healthy and self.up_s >= self.guard.healthy_s:
            self.guard.clear()  # this boot is a good one: reset the crash counter
        if self.safe and self.up_s >= _SAFE_REBOOT_S and self._reboot_at is None:
            log("safe mode: rebooting to try the full firmware")
            self.request_reboot()
        if self.core is not None and self.core.commands.reboot and self._reboot_at is None:
            log("ota: rebooting into the new firmware, or back to the old one")
            self.request_reboot()
        if self._reboot_at is not None and due(now, self._reboot_at):
            self.hw.reset()

    # -- what the console asks for ----------------------------------------------------------
    def request_reboot(self):
        self._reboot_at = ticks_add(self._now, 500)  # time to send the answer first

    def apply_broker(self):
        if self.link is not None:
            s = self.settings.values
            self.link.configure(s["host"], s["port"], s["user"], s["pass"], s["ca"],
                                s["brokers"])

    def status(self):
        core = self.core
        gc.collect()
        return {"fw": self.fw, "id": self.device_id, "mode": "safe" if self.safe else "normal",
                "up": self.up_s, "time": int(self.clock.time()), "tq": self.clock.quality(),
                "heap": mem_free(), "wifi": self.wifi.status(),
                "mqtt": self.link.status() if self.link is not None else "off",
                "tls": self.link is not None and self.link.tls(),
                "rd": self.taps.status if self.taps is not None else "off",
                "jd": core.journal.depth if core is not None else None,
                "planning": self.planning_status, "settings": self.settings.status,
                "boots": self.boots, "stalled": self.wd.stalled,
                "reboot_needed": self.reboot_needed}

    def selftest(self):
        out = {}
        r = self.hw.reader
        try:
            out["reader"] = r.version() if hasattr(r, "version") else "no version command"
            out["reader_ok"] = True
        except Exception as e:
            out["reader"] = "error: %s: %s" % (type(e).__name__, e)
            out["reader_ok"] = False
        rtc = self.hw.rtc
        if rtc is None:
            out["rtc"] = "absent"
        else:
            try:
                out["rtc"] = "lost_power" if rtc.lost_power() else "ok"
            except Exception as e:
                out["rtc"] = "error: %s" % e
        out["journal"] = "off" if self.core is None else "ok"
        out["settings"] = self.settings.status
        out["ok"] = out["reader_ok"] and out["rtc"] in ("ok", "absent")
        return out

    def counters(self):
        out = {"console_errors": self.console.errors, "wifi_drops": self.wifi.drops,
               "maint_opened": self.console.maint.opened,
               "maint_refused": self.console.maint.refused,
               "ntp_ok": self.clock.ntp_ok, "ntp_errors": self.clock.ntp_errors,
               "wdt_starved": self.wd.starved}
        if self.core is not None:
            out.update(self.core.counters())
            out.update(self.link.counters())
            out.update({"reader_errors": self.taps.errors, "taps": self.taps.taps})
        return out

    # -- asyncio ----------------------------------------------------------------------------
    async def _every(self, ms, step, name):
        import asyncio
        try:
            while True:
                step(ticks_ms())
                await _sleep_ms(asyncio, ms)
        except Exception as e:
            # The task is over: the watchdog stops being fed and resets the box.
            log("task %s died: %s: %s" % (name, type(e).__name__, e))

    async def _mqtt(self):
        try:
            await self.link.run()
        except Exception as e:  # the client catches its own: this is a bug, said
            log("task mqtt died: %s: %s" % (type(e).__name__, e))

    async def run(self, seconds=None):
        """Run the tasks; forever on the box, `seconds` in tests."""
        import asyncio
        log("telegest %s %s mode, id %s" % (self.fw, "safe" if self.safe else "normal",
                                             self.device_id))
        tasks = [asyncio.create_task(self._every(100, self.net_step, "net")),
                 asyncio.create_task(self._every(50, self.console_step, "console"))]
        if not self.safe:
            tasks.append(asyncio.create_task(self._every(50, self.reader_step, "reader")))
            tasks.append(asyncio.create_task(self._mqtt()))
        start = ticks_ms()
        while seconds is None or ticks_diff(ticks_ms(), start) < seconds * 1000:
            self.main_step(ticks_ms())
            await _sleep_ms(asyncio, 1000 if seconds is None else 50)
        if self.link is not None:
            self.link.close()
        for t in tasks:
            t.cancel()


def _sleep_ms(asyncio, ms):
    f = getattr(asyncio, "sleep_ms", None)
    return f(ms) if f is not None else asyncio.sleep(ms / 1000)
