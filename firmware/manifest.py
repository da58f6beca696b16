# Freeze the reader firmware into a MicroPython build:
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/telegest/firmware/manifest.py
# boot.py and main.py stay on the filesystem (mpremote cp), so a technician can replace them.
metadata(description="telegest reader box firmware", version="0.1.0")

include("$(PORT_DIR)/boards/manifest.py")
require("ntptime")

package(
    "firmware",
    files=(
        "__init__.py",
        "board.py",
        "codec.py",
        "commands.py",
        "config.py",
        "decide.py",
        "journal.py",
        "maintcode.py",
        "ndef.py",
        "ota/__init__.py",
        "ota/ed25519.py",
        "ota/updater.py",
        "planning.py",
        "reader.py",
        "ticks.py",
        "trust.py",
        "drivers/__init__.py",
        "drivers/ntag.py",
        "drivers/ntag424.py",
        "drivers/pn532.py",
        "drivers/pn532_i2c.py",
        "drivers/pn532_spi.py",
        "drivers/pn532_uart.py",
        "drivers/rc522.py",
        "drivers/rc522_i2c.py",
        "drivers/rc522_spi.py",
        "runtime/__init__.py",
        "runtime/app.py",
        "runtime/backoff.py",
        "runtime/clock.py",
        "runtime/console.py",
        "runtime/ds3231.py",
        "runtime/feedback.py",
        "runtime/health.py",
        "runtime/link.py",
        "runtime/maintenance.py",
        "runtime/mqtt.py",
        "runtime/net.py",
        "runtime/safemode.py",
        "runtime/settings.py",
        "runtime/taps.py",
        "runtime/watchdog.py",
        "runtime/tls.py",
        "runtime/wifi.py",
    ),
    base_path="..",
    opt=2,
)
