"""The reader box's runtime: the loop, links, time, health, watchdog, safe mode, console.

Hardware enters only through the `hw` object built in firmware/main.py (from `machine` and
`network` on the box, from fakes in the tests): no module here imports them.
"""
