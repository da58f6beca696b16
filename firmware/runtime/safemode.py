"""Safe mode after repeated crashes at boot, after ESPHome's safe_mode.

boot.py calls BootGuard(path).boot(), which counts the boot in a small file before anything
else runs. The main loop calls clear() once it has run healthily for `healthy_s`. When
`limit` boots in a row never got that far, the next one is a safe boot: only Wi-Fi and the
technician console start, not the reader loop. A safe boot clears the counter as it starts,
so the next reset (the technician's `reboot`, or safe mode's own timer) tries the full
firmware again.
"""
import os


class BootGuard:
    def __init__(self, path, limit=3, healthy_s=60):
        self.path = path
        self.limit = limit
        self.healthy_s = healthy_s
        self.cleared = False

    def count(self):
        """Boots counted since the last healthy run (this one included)."""
        try:
            with open(self.path) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0  # no file, or garbage: start counting again

    def _write(self, n):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % n)
        os.rename(tmp, self.path)

    def boot(self):
        """Count this boot (boot.py); returns the new count."""
        n = self.count() + 1
        try:
            self._write(n)
        except OSError:
            pass  # flash full or read-only: run normally rather than not at all
        return n

    def failed(self):
        """Boots in a row that crashed before running healthily."""
        n = self.count()
        return n - 1 if n > 0 else 0

    def safe(self):
        return self.failed() >= self.limit

    def clear(self):
        try:
            self._write(0)
        except OSError:
            return
        self.cleared = True
