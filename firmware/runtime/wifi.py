"""Wi-Fi station link with exponential back-off, over a network.WLAN-like object
(active(), isconnected(), connect(ssid, key), disconnect(), status("rssi"), ifconfig())."""
from firmware.runtime.backoff import Backoff
from firmware.ticks import due, ticks_add

_JOIN_MS = 15000  # give up one association attempt after this


class WifiLink:
    def __init__(self, wlan, ssid="", password="", backoff=None):
        self.wlan = wlan
        self.ssid = ssid
        self.password = password
        self.backoff = backoff or Backoff(2000, 120000)
        self._joining = None  # tick when the current attempt started
        self._retry = None  # tick of the next attempt
        self._was_up = False
        self.drops = 0  # connections lost
        self.attempts = 0

    def configure(self, ssid, password):
        """New credentials: drop the link, join again at once."""
        self.ssid, self.password = ssid, password
        self._disconnect()
        self._joining = self._retry = None
        self.backoff.reset()

    def up(self):
        try:
            return bool(self.wlan.isconnected())
        except OSError:
            return False

    def status(self):
        if not self.ssid:
            return "unconfigured"
        if self.up():
            return "up"
        return "joining" if self._joining is not None else "down"

    def rssi(self):
        try:
            return int(self.wlan.status("rssi")) if self.up() else None
        except (OSError, ValueError, TypeError):
            return None

    def ip(self):
        try:
            return self.wlan.ifconfig()[0] if self.up() else None
        except OSError:
            return None

    def _disconnect(self):
        try:
            self.wlan.disconnect()
        except OSError:
            pass

    def poll(self, now):
        """Keep the station joined; never blocks (WLAN.connect returns at once)."""
        if self.up():
            if not self._was_up:
                self._was_up = True
                self._joining = None
                self.backoff.reset()
            return
        if self._was_up:
            self._was_up = False
            self.drops += 1
        if not self.ssid:
            return
        if self._joining is not None:
            if not due(now, ticks_add(self._joining, _JOIN_MS)):
                return
            self._joining = None  # this attempt failed: back off
            self._disconnect()
            self._retry = ticks_add(now, self.backoff.next())
            return
        if not due(now, self._retry):
            return
        try:
            self.wlan.active(True)
            self.wlan.connect(self.ssid, self.password)
            self._joining = now
            self.attempts += 1
        except OSError:
            self._retry = ticks_add(now, self.backoff.next())

    def scan(self, limit=10):
        """The networks in range, strongest first: [{ssid, rssi, ch, open}], at most `limit`
        (a technician checks the box hears the home's Wi-Fi, and how well)."""
        self.wlan.active(True)
        try:
            found = self.wlan.scan()
        except OSError:
            return []
        nets = []
        for ssid, _bssid, ch, rssi, auth, _hidden in found:
            if isinstance(ssid, bytes):
                ssid = ssid.decode("utf-8", "replace")
            nets.append({"ssid": ssid, "rssi": rssi, "ch": ch, "open": auth == 0})
        nets.sort(key=lambda n: -n["rssi"])
        return nets[:limit]

