import pytest

from tests.runtime import fakes


@pytest.fixture(autouse=True)
def _close_fake_boxes():
    """Each fake box's event loop (the MQTT client's task) is closed after its test."""
    yield
    while fakes.MADE:
        hw = fakes.MADE.pop()
        if not hw.loop.is_closed():
            hw.close()
