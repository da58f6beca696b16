"""Taps are answered at once, whatever the network does (issue 15, item 3): the tap path
(read, decide, journal, LED and buzzer) is the reader task's own step and never waits for
the MQTT client, which does its network waits in its own task. Each case puts a card on
the reader while the network is in a bad way, and the feedback is shown in the very step
that read the card, with the client still stuck at that moment. Fake clock, no timing."""
import pytest

from tests.runtime.test_app import runtime, steps

A = bytes.fromhex("04A1B2C3D4E5F6")


def tap_now(rt, hw, now):
    """One reader step with a card on the reader: the feedback it showed, or None."""
    hw.reader.queue = [A]
    n = len(hw.indicator.calls)
    rt.reader_step(now)
    return hw.indicator.calls[n] if len(hw.indicator.calls) > n else None


@pytest.mark.parametrize("mode", ["down", "hang", "silent"])
def test_a_tap_is_answered_while_the_broker_is_unreachable(tmp_path, mode):
    hw, rt = runtime(tmp_path)
    hw.net.mode = mode
    steps(rt, 0, 2000)
    assert not rt.link.up()
    if mode != "down":
        assert rt.link.client.state == "connecting"  # the connect is hanging right now
    assert tap_now(rt, hw, 2000) == ("red", 400)
    assert rt.core.journal.depth == 1
    if mode == "hang":
        assert hw.net.pending == 1  # still hanging while the tap was answered
    steps(rt, 2050, 9000)
    assert rt.link.client.timeouts >= (1 if mode != "down" else 0)
    assert rt.link.client.failures >= 1
    hw.net.mode = "ok"
    steps(rt, 9000, 20000)
    assert rt.core.journal.acked == 1 and ("r1", 1) in hw.net.stored


def test_a_tap_is_answered_while_a_backlog_of_500_is_sent(tmp_path):
    hw, rt = runtime(tmp_path)
    hw.net.mode = "down"
    steps(rt, 0, 1000)
    for i in range(500):
        rt.core.clock.systime.t += 1
        rt.core.tap("%08X" % (0x20000000 + i))
    hw.net.mode = "ok"
    answered = []
    now = 1000
    while rt.core.journal.acked < 500 and now < 60000:
        steps(rt, now, now + 100)
        now += 100
        if 0 < rt.core.journal.acked < 400 and not answered:
            answered.append(tap_now(rt, hw, now))
            assert rt.link.up() and rt.core.journal.depth > 100  # the backlog is under way
    assert answered == [("red", 400)]
    steps(rt, now, now + 5000)
    assert rt.core.journal.acked == 501
    assert sorted(s for _, s in hw.net.stored) == list(range(1, 502))
