"""The keys this firmware trusts to sign update bundles (docs/updates.md).

Each entry is an Ed25519 public key, 64 hex characters. The private keys stay with the release
manager (`telegest fleet bundle keygen` prints the line to paste here). The list ships empty:
a box built from this repository as is refuses every update bundle ("no_trusted_key"), which
is the safe failure. Several keys may be listed while one replaces another.
"""
KEYS = ()

# The update channel this box follows: it refuses an offer signed for another channel
# ("wrong_channel"). A box changes channel by installing a firmware built with another one.
CHANNEL = "stable"
