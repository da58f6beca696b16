"""Exponential back-off with jitter, for Wi-Fi and MQTT reconnects."""


class Backoff:
    """Delays base, 2 base, 4 base ... up to cap (ms), each with up to `jitter` of it removed
    so that a fleet coming back after a power cut does not reconnect in step."""

    def __init__(self, base_ms=1000, cap_ms=60000, jitter=0.25, rand=None):
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.jitter = jitter
        self._rand = rand  # () -> float in [0, 1); None: no jitter (tests, reproducible)
        self.failures = 0

    def next(self):
        """The delay before the next attempt, in ms; counts one more failure."""
        d = self.base_ms << min(self.failures, 16)
        if d > self.cap_ms:
            d = self.cap_ms
        self.failures += 1
        if self._rand is not None and self.jitter:
            d -= int(d * self.jitter * self._rand())
        return d

    def reset(self):
        self.failures = 0
