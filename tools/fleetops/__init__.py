"""`telegest fleet device ...`: the device lifecycle from the command line (fleet.lifecycle)."""
