"""`telegest fleet bundle ...` and `telegest fleet rollout ...` (tools.updates.cli)."""
from tools.updates.cli import add_commands

__all__ = ["add_commands"]
