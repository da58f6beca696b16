# First of all, Ctrl-C (docs/security.md, "A box's USB port gives nothing away"): a boot.py
# that Ctrl-C stops makes MicroPython skip main.py and open the REPL, which reads the whole
# flash. So it is an ordinary byte from here on, on every box; main.py lets it through again on
# a box without a maintenance key.
try:
    from micropython import kbd_intr
    kbd_intr(-1)
except KeyboardInterrupt:  # a Ctrl-C in the instant before the line above: swallowed
    from micropython import kbd_intr
    kbd_intr(-1)
except ImportError:
    pass

# Runs first at every reset: count the boot before anything that could crash. The main loop
# clears the count after a minute of healthy running; 3 boots that never got there make the
# next one a safe boot (firmware/runtime/safemode.py).
try:
    from firmware.runtime.safemode import BootGuard

    BootGuard("/boots").boot()
except Exception as e:  # never let boot.py itself stop the board from reaching the REPL
    print("# boot.py:", e)

# Then the update slots (firmware/ota): count a trial boot of a new version, or switch back to
# the previous one when its trial is used up, and put the running slot first on sys.path.
try:
    import sys

    from firmware import ota

    ota.boot("/ota", sys.path)
except Exception as e:
    print("# boot.py ota:", e)
