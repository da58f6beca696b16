"""Hardware drivers: each one protocol core plus transports that only move bytes."""
