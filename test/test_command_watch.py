"""The reference consumer's decisions (fer_ros.examples.command_watch): silence is HOLD, and only a
healthy channel with a motion-allowing command lets the robot move."""
from __future__ import annotations

import pytest

from fer_ros.examples.command_watch import CommandWatch


def test_nothing_received_is_hold():
    watch = CommandWatch(2.0)
    assert watch.effective(0.0).command == 'HOLD' and not watch.may_move(0.0)
    assert 'no command' in watch.effective(0.0).reason


def test_the_current_command_while_messages_keep_coming():
    watch = CommandWatch(2.0)
    watch.on_message('PROCEED', 10.0)
    assert watch.effective(11.9).command == 'PROCEED' and watch.may_move(11.9)
    watch.on_message('STOP', 12.0)
    assert watch.effective(12.5).command == 'STOP' and not watch.may_move(12.5)


@pytest.mark.parametrize('fault', ['silence', 'deadline', 'liveliness', 'incompatible'])
def test_every_kind_of_silence_is_hold_until_the_next_message(fault):
    watch = CommandWatch(2.0)
    watch.on_message('PROCEED', 10.0)
    now = 10.5
    if fault == 'silence':
        now = 12.01                                   # no event needed: the local clock check
    elif fault == 'deadline':
        watch.on_deadline_missed(now)
    elif fault == 'liveliness':
        watch.on_liveliness(False, now)
    else:
        watch.on_incompatible_qos('DEADLINE')
    decision = watch.effective(now)
    assert decision.command == 'HOLD' and decision.reason and not watch.may_move(now)
    watch.on_message('PROCEED', now + 0.1)            # the node is back
    assert watch.effective(now + 0.2).command == 'PROCEED' and watch.may_move(now + 0.2)


def test_liveliness_regained_alone_does_not_clear_a_fault():
    watch = CommandWatch(2.0)
    watch.on_message('PROCEED', 10.0)
    watch.on_liveliness(False, 10.5)
    watch.on_liveliness(True, 10.6)
    assert watch.effective(10.7).command == 'HOLD'    # a message must prove the node is publishing again


def test_bad_deadline():
    with pytest.raises(ValueError, match='deadline_s'):
        CommandWatch(0.0)
