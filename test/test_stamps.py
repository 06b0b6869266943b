"""The one stamp policy (fer_ros.hri.stamps): per camera, out of order, future stamps, clock jumps,
skewed cameras, the command clock, and int32-safe output stamps."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fer_ros.hri.command_config import load_command_config
from fer_ros.hri.commands import CommandMapper
from fer_ros.hri.stamps import (
    CLOCK_JUMP,
    FUTURE_STAMP,
    INT32_MAX,
    OUT_OF_ORDER,
    TICK_IDLE_S,
    StampClock,
    StampConfig,
    StampPolicy,
    to_stamp,
)

DT = 1 / 30


def _stream(policy, camera, t0, n, arrival0=None, dt=DT):
    arrival0 = t0 if arrival0 is None else arrival0
    return [policy.judge(camera, t0 + i * dt, arrival0 + i * dt) for i in range(n)]


def test_in_order_frames_keep_their_stamps_as_command_time():
    policy = StampPolicy()
    verdicts = _stream(policy, 'cam', 1000.0, 30)
    assert all(not v.skip and not v.new_timeline for v in verdicts)
    assert [v.stamp for v in verdicts] == [v.command_time for v in verdicts] == [1000.0 + i * DT for i in range(30)]


def test_one_future_stamp_costs_one_frame_not_the_following_good_ones():
    policy = StampPolicy()
    _stream(policy, 'cam', 100.0, 10)
    t = 100.0 + 10 * DT
    assert policy.judge('cam', t + 0.9, t).skip == FUTURE_STAMP
    good = _stream(policy, 'cam', t + DT, 45)
    assert all(not v.skip for v in good), [v.skip for v in good if v.skip]


def test_out_of_order_frame_is_skipped_and_the_next_in_order_one_processed():
    policy = StampPolicy()
    _stream(policy, 'cam', 100.0, 10)
    t = 100.0 + 9 * DT
    assert policy.judge('cam', t - 0.5, t + 0.01).skip == OUT_OF_ORDER
    assert not policy.judge('cam', t + DT, t + DT).skip


def test_a_clock_jump_back_is_adopted_after_confirmation_and_the_command_clock_goes_on():
    policy = StampPolicy(StampConfig(confirm_frames=3))
    before = _stream(policy, 'cam', 500.0, 30)
    arrival = 500.0 + 30 * DT
    jumped = _stream(policy, 'cam', 10.0, 5, arrival0=arrival)      # a bag loop: stamps start again at 10 s
    assert [v.skip for v in jumped[:2]] == [CLOCK_JUMP, CLOCK_JUMP]
    assert not jumped[2].skip and jumped[2].new_timeline
    assert not jumped[3].skip and not jumped[3].new_timeline
    times = [v.command_time for v in before + jumped if not v.skip]
    assert all(b >= a for a, b in zip(times, times[1:]))
    assert jumped[3].command_time - before[-1].command_time == pytest.approx(4 * DT, abs=1e-6)


def test_a_camera_restart_with_a_clock_slightly_behind_is_adopted_after_confirmation():
    policy = StampPolicy()
    last = _stream(policy, 'cam', 500.0, 10)[-1]
    restart = _stream(policy, 'cam', 499.5, 4, arrival0=500.0 + 9 * DT + 0.1)   # 0.5 s behind: out of order
    assert [v.skip for v in restart] == [OUT_OF_ORDER, OUT_OF_ORDER, '', '']
    assert restart[2].new_timeline and restart[2].command_time > last.command_time


def test_network_reordering_costs_only_the_late_frame():
    policy = StampPolicy()
    stamps = [0, 1, 3, 2, 4, 5, 7, 6, 8]
    verdicts = [policy.judge('cam', 100.0 + k * DT, 100.0 + i * DT + 0.001) for i, k in enumerate(stamps)]
    assert [v.skip for v in verdicts] == ['', '', '', OUT_OF_ORDER, '', '', '', OUT_OF_ORDER, '']


def test_two_cameras_with_skewed_clocks_do_not_disturb_each_other():
    policy = StampPolicy()
    verdicts = []
    for i in range(300):                                              # 10 s, two 30 Hz cameras, 5 s skew
        arrival = 1000.0 + i * DT
        verdicts.append(policy.judge('left', arrival, arrival))
        verdicts.append(policy.judge('right', arrival - 5.0, arrival + 0.001))
    assert all(not v.skip and not v.new_timeline for v in verdicts[2:])
    times = [v.command_time for v in verdicts]
    assert all(b >= a for a, b in zip(times, times[1:]))
    assert times[-1] - times[0] == pytest.approx(299 * DT, abs=0.01)


def test_one_camera_with_two_interleaved_clocks_keeps_the_first_timeline():
    """Same frame_id, 5 s skew: no thrashing between timelines, the first one keeps being processed."""
    policy = StampPolicy()
    verdicts = []
    for i in range(100):
        arrival = 1000.0 + i * DT
        verdicts.append(policy.judge('cam', arrival, arrival))
        verdicts.append(policy.judge('cam', arrival - 5.0, arrival + 0.001))
    assert all(not v.skip for v in verdicts[0::2])
    assert all(v.skip == CLOCK_JUMP for v in verdicts[1::2][1:])
    assert not any(v.new_timeline for v in verdicts)


def test_repeated_stamps_advance_with_arrival_time():
    policy = StampPolicy()
    verdicts = [policy.judge('cam', 0.0, 50.0 + i * DT) for i in range(30)]
    assert all(not v.skip for v in verdicts)
    assert verdicts[-1].stamp == pytest.approx(29 * DT)


def test_cameras_beyond_the_limit_forget_the_longest_silent():
    policy = StampPolicy(StampConfig(max_cameras=3))
    forgotten = [policy.judge(f'cam{i}', 10.0 + i, 10.0 + i).forgotten for i in range(5)]
    assert forgotten == [(), (), (), ('cam0',), ('cam1',)]
    assert policy.cameras == ('cam2', 'cam3', 'cam4')


def test_non_finite_stamps_are_skipped():
    policy = StampPolicy()
    assert policy.judge('cam', math.nan, 1.0).skip
    assert policy.judge('cam', 1.0, math.inf).skip


def test_ticks_wait_while_frames_flow_and_never_run_backwards():
    policy = StampPolicy()
    assert policy.tick_time(5.0) == 0.0                             # no frame yet: the clock starts
    v = policy.judge('cam', 1000.0, 6.0)
    assert v.command_time == pytest.approx(1.0)                      # continues the tick clock
    assert policy.tick_time(6.0 + TICK_IDLE_S / 2) is None
    later = policy.tick_time(7.0)
    assert later == pytest.approx(2.0)
    assert policy.judge('cam', 1000.0 + DT, 6.0 + DT).command_time >= later   # late frame: clock does not go back


def test_clock_jump_never_unlatches_stop():
    """A scared face, then the clock jumps back 100 s while calm frames continue: STOP stays latched
    for its whole release time (counted on the command clock, which did not jump)."""
    config = load_command_config(None)
    policy, mapper = StampPolicy(StampConfig(clock_reset_s=config.clock_reset_s)), CommandMapper(config)
    from test_commands import face
    emitted = []
    arrival = 0.0
    for i in range(15):
        arrival += DT
        v = policy.judge('cam', 200.0 + arrival, arrival)
        emitted += mapper.update([face('scared')], v.command_time)
    assert mapper.current.command == 'STOP'
    stop_at = v.command_time
    release = []
    for i in range(90):
        arrival += DT
        v = policy.judge('cam', 100.0 + arrival, arrival)            # 100 s back
        if not v.skip:
            release += [(v.command_time, c) for c in mapper.update([face('neutral')], v.command_time)]
    changes = [(t, c.command) for t, c in release if not c.heartbeat]
    assert changes and changes[0][1] == 'PROCEED'
    assert changes[0][0] - stop_at >= config.commands['STOP'].release_s


@pytest.mark.parametrize('seconds,expected', [
    (1.5, (1, 500_000_000)), (0.0, (0, 0)), (-3.0, (0, 0)), (math.nan, (0, 0)),
    (float(INT32_MAX) + 10.0, (INT32_MAX, 999_999_999)), (math.inf, (INT32_MAX, 999_999_999)),
    (1e300, (INT32_MAX, 999_999_999)), (2.9999999999, (2, 999_999_999))])
def test_to_stamp_saturates_in_the_int32_range(seconds, expected):
    assert to_stamp(seconds) == expected


def test_stamp_clock_replaces_stamps_not_after_the_previous():
    clock = StampClock()
    out = [clock.effective(h, log) for h, log in [(100, 1000), (0, 1010), (0, 1030), (500, 1040)]]
    assert out == [100, 110, 130, 500] and clock.replaced == 2
    assert np.all(np.diff(out) > 0)
