"""Field technician tools: list ports, flash MicroPython, deploy the firmware, talk to the
reader's console, write, read and print badges. Each module is a small typed API that raises
TelegestError with what happened and what to do; tools/field/cli.py puts a command on each.
See docs/technician.md."""
