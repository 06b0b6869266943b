"""The command section (fer_ros.hri.decisions): the clock never waits for inference, a stalled frame gives
HOLD, commands leave in decision order; the exact error window; warm-up and reset of the Pipeline."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from fer_ros.core.labels import EXPRESSIONS
from fer_ros.core.types import FaceResult
from fer_ros.hri.command_config import load_command_config
from fer_ros.hri.commands import CommandMapper
from fer_ros.hri.decisions import Decisions
from fer_ros.hri.stamps import StampPolicy
from fer_ros.util.stats import WindowCounter

CONFIG = load_command_config(None)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')


def showing(expression: str) -> FaceResult:
    p = np.full(len(EXPRESSIONS), 0.1 / 6, np.float32)
    p[EXPRESSIONS.index(expression)] = 0.9
    return FaceResult('f1', (0.0, 0.0, 50.0, 50.0), expression, 0.9, p, p, 0.0, 0.0, 0.9)


def scared() -> FaceResult:
    return showing('scared')


def decisions() -> Decisions:
    return Decisions(CommandMapper(CONFIG), StampPolicy())


def test_the_clock_defers_to_a_frame_in_flight_then_holds_when_it_stalls():
    d, out = decisions(), []
    d.hold(10.0, publish=out.extend)                                 # activation: HOLD
    assert [c.command for c in out] == ['HOLD']
    t = 10.0
    for k in range(60):                                              # a smiling face: CONFIRM
        t = 10.0 + k / 30
        verdict = d.judge('cam', 1000.0 + k / 30, t)
        d.frame([showing('happy')], verdict.command_time, out.extend)
    assert out[-1].command == 'CONFIRM'
    d.judge('cam', 1002.0, t + 0.1)                                  # a frame starts, never ends (hung)
    start = t + 0.1
    assert d.tick(start + 0.5 * d.stall_s, out.extend) == []         # within the bound: the frame decides
    assert d.stalled_for(start + 0.5 * d.stall_s) == 0.0
    held = d.tick(start + d.stall_s + 0.1, out.extend)               # beyond it: a stall
    assert [(c.command, c.heartbeat) for c in held] == [('HOLD', False)]
    assert d.stalled_for(start + d.stall_s + 0.6) == pytest.approx(0.6)
    beats = [c for k in range(1, 30) for c in d.tick(start + d.stall_s + 0.1 * k, out.extend)]
    assert beats and all(c.command == 'HOLD' and c.heartbeat for c in beats)   # the heartbeat goes on
    stamps = [c.stamp for c in out]
    assert stamps == sorted(stamps)


def test_a_stall_keeps_a_latched_stop_and_the_late_frame_counts_at_the_newest_time():
    d, out = decisions(), []
    for k in range(10):                                              # STOP from a scared face
        verdict = d.judge('cam', 1000.0 + k / 30, 10.0 + k / 30)
        d.frame([scared()], verdict.command_time, out.extend)
    assert out[-1].command == 'STOP'
    verdict = d.judge('cam', 1000.0 + 10 / 30, 10.0 + 10 / 30)      # this frame hangs for 3 s
    for k in range(1, 31):
        d.tick(10.0 + 10 / 30 + 0.1 * k, out.extend)
    assert {c.command for c in out[-5:]} == {'STOP'}                 # STOP is not replaced by the stall
    late = d.frame([scared()], verdict.command_time, out.extend)     # comes back at last: no error
    assert all(c.stamp >= out[-len(late) - 1].stamp for c in late) if late else True
    stamps = [c.stamp for c in out]
    assert stamps == sorted(stamps)


def test_a_failed_frame_is_abandoned_and_the_clock_goes_on():
    d, out = decisions(), []
    d.judge('cam', 1000.0, 10.0)
    d.abandon()
    assert d.stalled_for(20.0) == 0.0                                # nothing in flight: no stall
    for k in range(1, 40):                                           # the clock goes on: the no-face HOLD
        d.tick(10.0 + 0.1 * k, out.extend)
    assert [c.command for c in out if not c.heartbeat] == ['HOLD']


def test_commands_leave_in_decision_order_from_many_threads():
    """A frame thread and a clock thread: every command is published inside the section, so the
    published order is the decision order and stamps never decrease."""
    d, published, lock = decisions(), [], threading.Lock()

    def publish(commands):
        with lock:                                                   # records the order of the calls
            published.extend(commands)
    stop = threading.Event()
    clock = [10.0]

    def frames():
        for k in range(300):
            clock[0] += 1 / 30
            verdict = d.judge('cam', 1000.0 + k / 30, clock[0])
            if not verdict.skip:
                d.frame([scared()] if k % 90 < 45 else [], verdict.command_time, publish)
        stop.set()

    def ticks():
        while not stop.is_set():
            d.tick(clock[0] + 0.3, publish)
    threads = [threading.Thread(target=frames), threading.Thread(target=ticks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stamps = [c.stamp for c in published]
    assert published and stamps == sorted(stamps)


def test_the_error_window_counts_every_error_however_many():
    window = WindowCounter(10.0)
    for k in range(60_000):                                          # 6000 errors/s for 10 s
        window.add(k / 6000)
    assert window.count(59_999 / 6000) == pytest.approx(60_000, rel=0.011)
    assert window.count(25.0) == 0
    with pytest.raises(ValueError):
        WindowCounter(0.0)


@pytest.mark.skipif(not os.path.isfile(DEFAULT_ONNX), reason='default model not converted (make setup)')
def test_warm_up_runs_every_session_before_the_first_frame():
    from fer_ros.backends import create_pipeline
    from fer_ros.pipeline import PipelineConfig
    pipeline = create_pipeline(PipelineConfig(model_path=DEFAULT_ONNX, backend='cpu'))
    try:
        detector = pipeline._detector
        assert list(detector._networks) == [detector.config.threads]    # only the full-frame session so far
        times = pipeline.warm_up()
        assert 1 in detector._networks                                  # the one-thread ROI session exists now
        batch = detector.config.max_faces * (2 if pipeline.mirror else 1)
        assert set(times) == {'full_frame_detection', 'roi_detection', f'classifier_batch_{batch}'}
    finally:
        pipeline.close()


@pytest.mark.skipif(not os.path.isfile(DEFAULT_ONNX), reason='default model not converted (make setup)')
def test_reset_forgets_the_scene_and_cancels_a_calibration():
    from fer_ros.backends import create_pipeline
    from fer_ros.pipeline import PipelineConfig
    from fer_ros.sample_frames import sample_frame
    pipeline = create_pipeline(PipelineConfig(model_path=DEFAULT_ONNX, backend='cpu'))
    try:
        frame = sample_frame(1)[0]
        for k in range(3):
            pipeline.process(frame, 100.0 + k / 30)
        pipeline.neutral.request(None, 5.0)
        assert pipeline.neutral.collecting and pipeline.visible_face_ids()
        pipeline.reset(keep_command=False)
        assert not pipeline.neutral.collecting and pipeline.visible_face_ids() == []
        assert pipeline.process(frame, 200.0).faces == []               # a new face: tentative again
    finally:
        pipeline.close()
