"""The background full scan's schedule and worker thread (no ROS). Deterministic on any machine: clocks
are injected and the tests wait on the worker's conditions, never on sleeps."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from fer_ros.core.types import Detection
from fer_ros.perception.full_scan import FullScanWorker, ScanSchedule

FRAME = np.zeros((48, 64, 3), np.uint8)
WAIT_S = 30.0          # generous: only a broken worker ever waits this long


class GatedDetector:
    """A detector whose scans block until the test opens the gate; it records the frames it saw."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.seen: list[np.ndarray] = []
        self.fail = fail

    def detect(self, bgr):
        self.seen.append(bgr)
        self.entered.set()
        assert self.gate.wait(WAIT_S)
        if self.fail:
            raise RuntimeError('detector broke')
        return [Detection(box=(1.0, 2.0, 10.0, 12.0), score=0.9)]


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_schedule_is_by_time_not_frames():
    schedule = ScanSchedule(every_s=0.1, share=1.0)
    assert schedule.due('cam', 5.0, budget=False)                  # never scanned: due at once
    schedule.started('cam', 5.0)
    assert not schedule.due('cam', 5.099, budget=False)
    assert schedule.due('cam', 5.1, budget=False)                  # however many frames came in between
    assert schedule.due('other', 5.05, budget=False)               # cameras are scheduled separately


def test_schedule_budget_allows_back_to_back_scans_within_the_share():
    schedule = ScanSchedule(every_s=0.1, share=0.25)
    schedule.started('cam', 0.0)
    schedule.finished('cam', 0.01)
    # 10 ms scans at a 25 % share: the next may start 40 ms after the last start, not 100 ms
    assert not schedule.due('cam', 0.039, budget=True) and schedule.due('cam', 0.04, budget=True)
    assert not schedule.due('cam', 0.04, budget=False)             # inline scans keep every_s
    schedule.finished('cam', 0.05)                                 # a slow scan: the share would wait 200 ms
    assert schedule.due('cam', 0.1, budget=True)                   # but every_s is the bound
    schedule.forget('cam')
    assert schedule.due('cam', 0.0, budget=True)


def test_schedule_idle_waits_idle_s_without_the_budget_and_only_when_gated():
    schedule = ScanSchedule(every_s=0.05, share=0.25, idle_s=0.5)
    assert schedule.gated
    schedule.started('cam', 0.0)
    schedule.finished('cam', 0.01)
    assert schedule.due('cam', 0.04, budget=True)                  # not idle: the share budget (40 ms)
    assert not schedule.due('cam', 0.499, budget=True, idle=True)  # idle: the budget brings nothing forward
    assert schedule.due('cam', 0.5, budget=True, idle=True)
    for every_s, idle_s in ((0.05, 0.0), (0.05, 0.05), (0.0, 0.5)):  # off: idle is ignored
        off = ScanSchedule(every_s=every_s, share=1.0, idle_s=idle_s)
        off.started('cam', 0.0)
        assert not off.gated and off.due('cam', every_s, budget=False, idle=True)


def test_worker_scans_off_the_callers_thread_and_never_blocks_it():
    detector, clock = GatedDetector(), FakeClock(100.0)
    worker = FullScanWorker(detector, clock=clock)
    try:
        assert worker.offer('cam', FRAME, stamp=7.0)
        assert detector.entered.wait(WAIT_S)                       # the scan is running (and blocked)
        assert worker.busy and worker.results() == []
        assert not worker.offer('cam', FRAME, stamp=7.1)           # busy: refused at once, not queued
        clock.now = 100.25
        detector.gate.set()
        assert worker.wait_idle(WAIT_S)
        [result] = worker.results()
        assert (result.key, result.stamp, result.started, result.error) == ('cam', 7.0, 100.0, '')
        assert result.duration_s == pytest.approx(0.25)
        assert [d.box for d in result.detections] == [(1.0, 2.0, 10.0, 12.0)]
        assert worker.results() == [] and not worker.busy
        assert len(detector.seen) == 1 and detector.seen[0] is FRAME
    finally:
        detector.gate.set()
        worker.close()


def test_a_failing_scan_is_reported_and_the_worker_goes_on():
    detector = GatedDetector(fail=True)
    detector.gate.set()
    worker = FullScanWorker(detector)
    try:
        assert worker.offer('cam', FRAME, 1.0) and worker.wait_idle(WAIT_S)
        [failed] = worker.results()
        assert failed.detections == [] and failed.error == 'RuntimeError: detector broke'
        detector.fail = False
        assert worker.offer('cam', FRAME, 2.0) and worker.wait_idle(WAIT_S)
        [ok] = worker.results()
        assert ok.error == '' and len(ok.detections) == 1
    finally:
        worker.close()


def test_close_ends_the_thread_and_refuses_new_frames():
    detector = GatedDetector()
    detector.gate.set()
    worker = FullScanWorker(detector)
    worker.close()
    assert not worker.offer('cam', FRAME, 1.0)
    assert not worker._thread.is_alive()
