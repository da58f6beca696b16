"""Moving a paho client to another broker address between two connections (a cluster's nodes).

paho 2 keeps reconnecting to the address it was given. Its `host` and `port` setters refuse
while the connection is not fully closed, and `on_disconnect` runs before that, so the two
attributes its `reconnect()` reads are set here, the one place that knows (paho 2.0 to 2.2).
"""
from __future__ import annotations

import paho.mqtt.client as mqtt


def retarget(client: mqtt.Client, host: str, port: int) -> None:
    """paho's next (re)connect goes to host:port; call it from on_disconnect or
    on_connect_fail."""
    client._host, client._port = host, port  # noqa: SLF001 (see the module's docstring)


class Addresses:
    """A list of (host, port) gone through in turn, round the list."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        if not addresses:
            raise ValueError("no broker address")
        self.addresses = list(dict.fromkeys(addresses))
        self.current = 0
        self.moves = 0

    @property
    def now(self) -> tuple[str, int]:
        return self.addresses[self.current]

    def next(self, client: mqtt.Client) -> tuple[str, int]:
        """Aim `client` at the next address (none other: the same one) and return it."""
        if len(self.addresses) > 1:
            self.current = (self.current + 1) % len(self.addresses)
            self.moves += 1
            retarget(client, *self.now)
        return self.now
