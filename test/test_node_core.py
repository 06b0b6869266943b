"""ROS-free pieces the node is built from: latest-frame slot, rate/latency statistics, overlay."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from fer_ros.core.types import Command, FaceResult
from fer_ros.io.overlay import draw_overlay
from fer_ros.util.frame_slot import LatestFrameSlot
from fer_ros.util.stats import RateMeter, StageTimes, percentiles


def test_slot_keeps_only_the_newest_frame_and_counts_drops():
    slot = LatestFrameSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take(timeout=0) == 4
    assert (slot.received, slot.dropped) == (5, 4)
    assert slot.take(timeout=0.01) is None


def test_slot_wakes_a_waiting_worker_and_close_releases_it():
    slot = LatestFrameSlot()
    got = []
    worker = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    worker.start()
    slot.put('frame')
    worker.join(2)
    assert got == ['frame']
    waiter = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    waiter.start()
    slot.close()
    waiter.join(2)
    assert not waiter.is_alive() and got[-1] is None


def test_rate_meter_measures_events_per_second_in_its_window():
    meter = RateMeter(window_s=2.0)
    for i in range(31):
        meter.mark(100.0 + i / 30)          # 30 Hz for one second
    assert meter.rate(101.0) == pytest.approx(30.0)
    assert meter.rate(110.0) == 0.0          # all events left the window
    with pytest.raises(ValueError, match='window_s'):
        RateMeter(0)


def test_stage_times_percentiles():
    times = StageTimes(maxlen=100)
    for ms in range(1, 101):
        times.add({'infer': float(ms), 'total': 2.0 * ms})
    summary = times.summary()
    assert summary['infer']['p50'] == pytest.approx(50.5)
    assert summary['total']['p99'] == pytest.approx(2 * 99.01)
    assert np.isnan(percentiles([])['p50'])


def test_overlay_draws_boxes_and_command_without_touching_the_input():
    image = np.zeros((240, 320, 3), np.uint8)
    face = FaceResult('f1', (50, 60, 80, 80), 'happy', 0.9, np.full(7, 1 / 7, np.float32),
                      np.full(7, 1 / 7, np.float32), 0.5, 0.3, 0.95)
    out = draw_overlay(image, [face], Command('STOP', 255, 'f1', 'scared', 0.8))
    assert image.sum() == 0
    assert out[60, 50:130].any() and out[140, 50:130].any()    # top and bottom box edges
    assert out[:40, :100, 2].max() > 200                        # red STOP text top-left
