"""The Pipeline with its whole-frame scan on a thread of its own (the node's mode), on real faces with the
real detector and classifier.

Deterministic on any machine and under any load: the scan thread's detector is gated by the test (a
scan runs exactly when the test lets it), the tests wait for the worker to be idle instead of sleeping,
frame stamps are the pipeline's clock, and the scan clock is injected.
"""
from __future__ import annotations

import os
import threading

import pytest

from fer_ros import pipeline as pipeline_module
from fer_ros.backends import create_face_detector
from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.full_scan import STALL_FACTOR, STALL_MIN_S
from fer_ros.pipeline import Pipeline, PipelineConfig
from fer_ros.sample_frames import FACE_SOURCES, background, paste_face

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
WAIT_S = 60.0            # only a broken worker waits this long
SCAN_S = 0.1             # full_scan_s of these tests: a scan is due every 3rd frame at 30 Hz
FPS = 30.0

pytestmark = pytest.mark.skipif(not os.path.isfile(DEFAULT_ONNX),
                                reason='models/mini_xception_fer2013.onnx not converted yet (make setup)')


class GatedDetector:
    """The real detector of the scan thread; each whole-frame scan waits until the test opens the gate."""

    def __init__(self, detector) -> None:
        self._detector = detector
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False
        self.scans = 0

    def __getattr__(self, name):           # name, config, ... of the real detector
        return getattr(self._detector, name)

    def __setattr__(self, name, value):
        if name == 'config':                # set_detector_config changes the real detector's settings
            self._detector.config = value
        else:
            super().__setattr__(name, value)

    def detect(self, bgr, regions=None):
        assert regions is None, 'the scan thread only scans whole frames'
        assert self.gate.wait(WAIT_S)
        self.scans += 1
        if self.fail:
            raise RuntimeError('scan detector broke')
        return self._detector.detect(bgr)


class Factory:
    """create_face_detector; the second detector made (the scan thread's) is gated."""

    def __init__(self) -> None:
        self.scan_detector: GatedDetector | None = None
        self.calls = 0

    def __call__(self, config: DetectorConfig):
        self.calls += 1
        detector = create_face_detector(config)
        if self.calls == 2:
            self.scan_detector = GatedDetector(detector)
            return self.scan_detector
        return detector


class SteppingClock:
    """Advances one second per reading: every scan 'takes' 1 s, so the share budget (1 s / 0.25) never
    brings a scan forward and ``full_scan_s`` alone decides, whatever this machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture(scope='module')
def frames():
    one = background().copy()
    paste_face(one, FACE_SOURCES[0], (160, 240), 120)
    two = one.copy()
    paste_face(two, FACE_SOURCES[0], (480, 240), 120, mirror=True)
    return one, two


@pytest.fixture(scope='module')
def backend():
    return OnnxRuntimeBackend(DEFAULT_ONNX)


def make_pipeline(backend, idle_scan_s: float = 0.0) -> Pipeline:
    factory = Factory()
    # the scene-change gate off by default (idle_scan_s 0): these tests are about the worker thread, on
    # scenes that stay still; the gate has its own tests (test/test_scene_change.py and the last one here)
    config = PipelineConfig(model_path=DEFAULT_ONNX, background_scan=True,
                            detector=DetectorConfig(full_scan_s=SCAN_S, idle_scan_s=idle_scan_s))
    pipe = Pipeline(config, backend, detector_factory=factory, scan_clock=SteppingClock())
    pipe.gated = factory.scan_detector
    pipe.gated.scans = 0           # not the warm-up scan of a blank frame
    return pipe


@pytest.fixture()
def pipeline(backend):
    pipe = make_pipeline(backend)
    yield pipe
    pipe.gated.gate.set()
    pipe._scans.close()            # the backend is shared by the module's tests: leave it open


def worker(pipe):
    return pipe._scans.worker


def start_tracking(pipe, frame):
    """Frame 0 goes to the scan thread (nothing tracked); frame 1 merges its face and confirms it."""
    first = pipe.process(frame, 0.0)
    assert first.detect_mode == 'roi' and first.num_detections == 0 and first.faces == []
    assert worker(pipe).wait_idle(WAIT_S)
    second = pipe.process(frame, 1 / FPS)
    # the scan counted as the face's first sighting: published on the first frame after it
    assert len(second.faces) == 1 and second.detect_mode == 'roi' and 'scan' in second.timing_ms
    return second.faces[0].face_id


def test_a_newcomer_is_published_on_the_first_frame_after_its_scan_and_no_frame_waits(pipeline, frames):
    one, two = frames
    first_id = start_tracking(pipeline, one)
    assert pipeline.gated.scans == 1
    pipeline.gated.gate.clear()
    results = [pipeline.process(one, 2 / FPS)]
    # frame 3 (0.1 s after the last scan started) is due: handed over, and its scan blocks in the worker
    for i in range(3, 9):
        results.append(pipeline.process(two, i / FPS))
        assert worker(pipeline).busy
    # every frame was processed on the ROI path while the scan was blocked: the first face only
    assert all([f.face_id for f in r.faces] == [first_id] and r.detect_mode == 'roi' for r in results)
    pipeline.gated.gate.set()
    assert worker(pipeline).wait_idle(WAIT_S)
    merged = pipeline.process(two, 9 / FPS)          # the scan of frame 3 (0.2 s old) is merged
    assert len(merged.faces) == 2 and merged.faces[0].face_id == first_id
    assert merged.detect_mode == 'roi' and merged.num_detections == 2


class WatchingBackend:
    """The real classifier; records at each call whether the scan thread had a frame (busy) by then."""

    def __init__(self, backend) -> None:
        self._backend, self.pipeline, self.busy_at_infer = backend, None, []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def infer(self, batch):
        self.busy_at_infer.append(worker(self.pipeline).busy)
        return self._backend.infer(batch)


def test_the_scan_gets_its_frame_after_that_frame_is_classified(backend, frames):
    """A scan handed over before the frame's own detection and classification slowed that frame (they
    share the cores' memory bandwidth and the interpreter): the worker is idle while the frame is
    classified, and busy (blocked at the gate) once process returns."""
    one, _ = frames
    watching = WatchingBackend(backend)
    pipeline = make_pipeline(watching)
    watching.pipeline = pipeline
    try:
        start_tracking(pipeline, one)
        pipeline.gated.gate.clear()
        pipeline.process(one, 2 / FPS)
        watching.busy_at_infer.clear()
        pipeline.process(one, 3 / FPS)                    # due: its scan blocks in the worker
        assert watching.busy_at_infer == [False] and worker(pipeline).busy
    finally:
        pipeline.gated.gate.set()
        pipeline._scans.close()


@pytest.mark.parametrize('max_age_s, merged', [(None, True), (0.3, False)])
def test_a_late_scan_is_merged_unless_older_than_the_bound(backend, frames, max_age_s, merged, monkeypatch):
    one, two = frames
    if max_age_s is not None:
        monkeypatch.setattr(pipeline_module, 'MAX_SCAN_AGE_S', max_age_s)
    pipeline = make_pipeline(backend)
    try:
        start_tracking(pipeline, one)
        pipeline.gated.gate.clear()
        pipeline.process(one, 2 / FPS)
        last = 3 + int(0.3 * FPS) + 1                     # frame 3's scan arrives 0.33 s after its frame
        for i in range(3, last):
            assert pipeline.process(two, i / FPS).detect_mode == 'roi'    # slow, not stalled
        pipeline.gated.gate.set()
        assert worker(pipeline).wait_idle(WAIT_S)
        late = pipeline.process(two, last / FPS)
        assert len(late.faces) == (2 if merged else 1) and ('scan' in late.timing_ms) == merged
        if not merged:                                    # this frame went to a new scan, which finds it
            assert worker(pipeline).wait_idle(WAIT_S)
            assert len(pipeline.process(two, (last + 1) / FPS).faces) == 2
    finally:
        pipeline.gated.gate.set()
        pipeline._scans.close()


def test_a_scan_of_a_frame_before_a_reset_is_dropped(pipeline, frames):
    one, two = frames
    start_tracking(pipeline, one)
    pipeline.gated.gate.clear()
    pipeline.process(two, 2 / FPS)
    pipeline.process(two, 3 / FPS)                    # handed to the (blocked) scan
    pipeline.reset()
    pipeline.gated.gate.set()
    assert worker(pipeline).wait_idle(WAIT_S)
    after = pipeline.process(two, 4 / FPS)            # the old scan is not merged into the new tracks
    assert after.faces == [] and after.num_detections == 0 and 'scan' not in after.timing_ms


def test_a_stalled_scan_thread_makes_the_frames_scan_inline(pipeline, frames):
    one, two = frames
    start_tracking(pipeline, one)
    pipeline.gated.gate.clear()
    pipeline.process(one, 2 / FPS)
    pipeline.process(two, 3 / FPS)                    # the scan that hangs
    stall_at = 3 + int(max(STALL_MIN_S, STALL_FACTOR * SCAN_S) * FPS) + 1
    modes = [pipeline.process(two, i / FPS).detect_mode for i in range(4, stall_at)]
    assert set(modes) == {'roi'}
    rescue = pipeline.process(two, stall_at / FPS)    # hung for longer than the stall bound
    assert rescue.detect_mode == 'full' and rescue.num_detections == 2


def test_a_failing_scan_is_reported_with_the_next_frame_which_is_still_processed(pipeline, frames):
    one, _ = frames
    first_id = start_tracking(pipeline, one)
    pipeline.gated.fail = True
    for i in range(2, 4):
        pipeline.process(one, i / FPS)                # frame 3 is handed to the scan, which raises
    assert worker(pipeline).wait_idle(WAIT_S)
    result = pipeline.process(one, 4 / FPS)
    assert result.scan_error == 'background full-frame scan failed: RuntimeError: scan detector broke'
    assert [f.face_id for f in result.faces] == [first_id]
    assert pipeline.process(one, 5 / FPS).scan_error == ''


def test_detector_settings_reach_the_scan_thread(pipeline, frames):
    one, _ = frames
    pipeline.set_detector_config(DetectorConfig(full_scan_s=SCAN_S, idle_scan_s=0.0, confidence_threshold=0.99,
                                                max_faces=3))
    assert pipeline.gated.config.confidence_threshold == 0.99 and pipeline.gated.config.num_threads == 1
    assert pipeline._scans.schedule.every_s == SCAN_S


def test_with_the_gate_a_still_scene_is_scanned_every_idle_period_and_a_newcomer_at_once(backend, frames):
    one, two = frames
    pipeline = make_pipeline(backend, idle_scan_s=0.5)
    try:
        start_tracking(pipeline, one)                      # scan of frame 0, merged on frame 1
        for i in range(2, 15):                             # still: no scan before 0.5 s (frame 15)
            pipeline.process(one, i / FPS)
            assert worker(pipeline).wait_idle(WAIT_S)
        assert pipeline.gated.scans == 1
        pipeline.process(one, 15 / FPS)                    # the idle scan
        assert worker(pipeline).wait_idle(WAIT_S) and pipeline.gated.scans == 2
        pipeline.process(two, 16 / FPS)                    # the newcomer appears: 33 ms after the last scan
        pipeline.process(two, 18 / FPS)                    # full_scan_s (0.1 s) after it: handed over
        assert worker(pipeline).wait_idle(WAIT_S) and pipeline.gated.scans == 3
        assert len(pipeline.process(two, 19 / FPS).faces) == 2
    finally:
        pipeline.gated.gate.set()
        pipeline._scans.close()
