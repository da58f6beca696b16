"""LED and buzzer patterns per feedback kind. The first step is shown inside show(), right
after ReaderCore.tap() returns, so the caregiver sees the answer well within 300 ms; poll()
plays the rest without blocking.

`out` is the injected indicator: set(color, hz) with color "green", "amber", "red" or None
(off) and hz the buzzer tone, 0 for silence (main.py maps it onto the board's pins and PWM).
"""
# (color, buzzer Hz, ms) steps. Green = accepted, amber = accepted but not planned,
# red = refused or failed; one beep for in, two for out.
PATTERNS = {
    # an SOS raised by the box's button: three long red beeps
    "sos": (("red", 1500, 300), (None, 0, 150), ("red", 1500, 300), (None, 0, 150),
            ("red", 1500, 300)),
    "in": (("green", 2000, 150), ("green", 0, 850)),
    "out": (("green", 2000, 100), ("green", 0, 100), ("green", 2000, 100), ("green", 0, 700)),
    "unplanned_in": (("amber", 2000, 150), ("amber", 0, 850)),
    "unplanned_out": (("amber", 2000, 100), ("amber", 0, 100), ("amber", 2000, 100),
                      ("amber", 0, 700)),
    "unknown": (("red", 400, 800), ("red", 0, 200)),
    "repeat": (("green", 0, 300),),
    "full": (("red", 400, 150), (None, 0, 150), ("red", 400, 150), (None, 0, 150),
             ("red", 400, 150), (None, 0, 150)),
    "error": (("red", 400, 200), ("red", 0, 200)),
}


from firmware.ticks import ticks_add, ticks_diff


class Feedback:
    def __init__(self, out):
        self.out = out
        self._steps = ()
        self._i = 0
        self._until = 0
        self.shown = 0
        self.errors = 0  # indicator failures (a dead LED must not stop the reader)

    def _set(self, color, hz):
        try:
            self.out.set(color, hz)
        except Exception:
            self.errors += 1

    def show(self, kind, now):
        self._steps = PATTERNS.get(kind) or PATTERNS["error"]
        self._i = 0
        self.shown += 1
        self._start(now)

    def _start(self, now):
        color, hz, ms = self._steps[self._i]
        self._set(color, hz)
        self._until = ticks_add(now, ms)

    def busy(self):
        return self._i < len(self._steps)

    def poll(self, now):
        if not self.busy() or ticks_diff(now, self._until) < 0:
            return
        self._i += 1
        if self.busy():
            self._start(now)
        else:
            self._set(None, 0)
