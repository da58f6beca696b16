"""The virtual MicroPython board, driven by the real mpremote over a socket:// URL.

Missing node, npm package or mpremote fail these tests (they never skip).
"""
from __future__ import annotations

import pytest

from tools.vboard import VirtualBoard, VirtualBoardError


def _start(**kw) -> VirtualBoard:
    try:
        return VirtualBoard(**kw).start()
    except VirtualBoardError as e:
        pytest.fail(str(e))


@pytest.fixture
def start_board():
    boards = []

    def start(**kw):
        boards.append(_start(**kw))
        return boards[-1]

    yield start
    for b in boards:
        b.stop()


@pytest.fixture
def board(start_board):
    return start_board()
