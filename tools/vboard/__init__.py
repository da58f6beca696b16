"""A virtual MicroPython board: the real interpreter (WebAssembly, under Node) behind a TCP
socket that mpremote and pyserial reach as `socket://127.0.0.1:PORT`. See docs/virtual-board.md.
"""
from tools.vboard.board import VirtualBoard, VirtualBoardError

__all__ = ["VirtualBoard", "VirtualBoardError"]
