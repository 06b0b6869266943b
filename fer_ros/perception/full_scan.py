"""The whole-frame face scan beside the per-frame ROI path: when it runs, and on which thread (ROS-free).

Between full scans the Pipeline looks for faces only around the tracked ones (ROI mode, a few ms per
frame). A face entering the view is found only by a scan of the whole frame (~10 ms at 640x480 on one
core), so the scan decides how soon a newcomer is seen, and, run on the frame's own thread, it was the
worst frame's latency. Two ways to run it:

- **background** (the node; ``PipelineConfig.background_scan``): a ``FullScanWorker`` thread with its
  own detector (its own ONNX Runtime session and thread budget) scans a frame the ROI path hands it and
  returns at once: no frame ever waits for a scan. The scan's faces reach the tracker on the first frame
  processed after the scan finished (``FaceTracker.add_candidates``): a face no track claims becomes a
  tentative track whose first sighting is the scan, and the ROI path searches around it from that frame
  on (so it is confirmed on that frame with the default ``min_hits`` 2).
- **inline** (fer-infer, the bag evaluator, lockstep evaluation): the scan runs on the frame itself when
  it is due, so the output depends only on the frames and their stamps (reproducible).

**Time, not frames** (``ScanSchedule``): a camera's next scan is due ``full_scan_s`` after its last one
started (on the clock the caller passes: arrival time in the node, stamps offline), and in the background
as soon as the previous one finished when the budget allows: after a scan that took d seconds the next
may start d / ``full_scan_share`` after it (share 1 = back to back, 0.25 = the scan thread uses at most a
quarter of a core on average). A camera with no tracks is scanned on every frame inline, and as soon as
the worker is free in the background (nothing else would find a face).

**Scene-change gate** (``idle_scan_s``, fer_ros.perception.scene_change): the ``full_scan_s`` period holds
while the camera's view outside its tracked faces' ROI windows changed since its last scan (a gray 80 px
thumbnail), or a track missed its last frame (the ROI path lost it), or nothing is tracked; a still scene
whose faces are all found is scanned every ``idle_scan_s`` instead (the share budget brings nothing
forward then): a scan of unchanged pixels finds what the last one found. ``idle_scan_s`` 0 (or not above
``full_scan_s``) and ``full_scan_s`` 0 turn the gate off. A moving camera changes every pixel: scans as
without the gate.

**Stale results** (``ScanResult``; the merge rule of ``Pipeline``): a scan's faces are dropped when the
camera's tracks were reset after its frame was handed over (a pipeline reset, a clock jump), when its
frame is more than ``MAX_SCAN_AGE_S`` older than the frame being processed, or when it is not older than
that frame (out-of-order stamps). Any other result is merged, even a late one: a face
that moved out of the search window around its scanned box only costs a few ROI searches (its tentative
track expires unmatched after coast_s) and the next scan finds it, whereas dropping late results would, on
a machine so busy that every scan is late, never find anyone. Faces a track claims only move that
track's search window when the track missed its last frame (the ROI path lost it; the scan re-finds it).

Bound on finding a new face (background, one camera, scan time d, frame period T, one frame's own processing
p): the scan that sees the face's first frame is planned at most P after it (later only while the previous
scan still runs, at most d), starts once that frame is processed (``hand_over``), ends d later and is merged
into the next frame processed: at most max(P, d) + p + d + T + p, plus (``min_hits`` - 2) frames. P =
full_scan_s for a face the gate sees (it changes at least the thumbnail pixels of the smallest face a scan
finds, outside the tracked faces' windows); P = idle_scan_s for one it does not see (a face appearing with
almost no pixel change: turning towards the camera inside an unchanged silhouette, or a change below the
gate's level), the gate's worst case: 0.5 + ~0.05 s with the defaults at 30 Hz.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fer_ros.core.types import Detection
from fer_ros.perception.scene_change import SceneChange

# A scan's faces are merged while its frame is at most this much older than the frame being processed: a
# box that old says nothing about where the face is now (the next scan looks again). Generous on purpose:
# on a busy machine scans arrive late (measured up to ~0.3 s at load 7 on 2 cores) and must still count.
MAX_SCAN_AGE_S = 2.0
# A background scan running longer than max(STALL_MIN_S, STALL_FACTOR * full_scan_s) counts as stalled
# (a hung detector or driver): the ROI path then scans inline, so a hang never hides a new face for long.
# The floor keeps a scan that is merely slow on a busy machine (measured up to ~0.3 s at load 7 on 2
# cores) from being doubled by inline scans that would slow every frame down further.
STALL_FACTOR = 4.0
STALL_MIN_S = 1.0


@dataclass
class ScanResult:
    """One finished background scan.

    key: who asked (the Pipeline's camera token); stamp: the scanned frame's stamp (s);
    detections: its faces in frame pixels; started / duration_s: on the worker's clock (s);
    error: '' or what the detector raised.
    """

    key: Any
    stamp: float
    detections: list[Detection] = field(default_factory=list)
    started: float = 0.0
    duration_s: float = 0.0
    error: str = ''


class ScanSchedule:
    """Per-camera start times of full scans: due every ``every_s`` at the latest, and at most as often as
    ``share`` allows (background only); or, when the caller says the scene is idle, every ``idle_s``
    (``gated``: only when ``idle_s`` > ``every_s`` > 0). Clock values are seconds of whatever clock the
    caller uses."""

    def __init__(self, every_s: float, share: float, idle_s: float = 0.0) -> None:
        self.every_s = float(every_s)
        self.share = float(share)
        self.idle_s = float(idle_s)
        self._last: dict[Any, tuple[float, float]] = {}     # key -> (start, duration)

    @property
    def gated(self) -> bool:
        """The scene-change gate is on: an idle scene waits ``idle_s``. Off when ``idle_s`` is not longer
        than ``every_s``, and when ``every_s`` is 0 (every frame scanned: what was asked for)."""
        return self.idle_s > self.every_s > 0.0

    def due(self, key: Any, now: float, *, budget: bool, idle: bool = False) -> bool:
        """A scan for ``key`` may start at ``now``: ``every_s`` passed since its last start, or (when
        ``budget``) the last scan's duration / share passed; with ``idle`` (and ``gated``) ``idle_s``
        passed instead. Never scanned: due."""
        last = self._last.get(key)
        if last is None:
            return True
        start, duration = last
        if idle and self.gated:
            wait = self.idle_s
        else:
            wait = min(self.every_s, duration / self.share) if budget else self.every_s
        return now - start >= wait - 1e-6      # a microsecond of slack: stamps like i / 30 round

    def started(self, key: Any, now: float) -> None:
        self._last[key] = (float(now), self._last.get(key, (0.0, 0.0))[1])

    def finished(self, key: Any, duration_s: float) -> None:
        if key in self._last:
            self._last[key] = (self._last[key][0], float(duration_s))

    def last_start(self, key: Any) -> float | None:
        last = self._last.get(key)
        return None if last is None else last[0]

    def forget(self, key: Any) -> None:
        self._last.pop(key, None)


class FullScanWorker:
    """A thread that runs whole-frame detections on its own detector, one frame at a time.

    Args:
        detector: a FaceDetector used by this thread only (its own session and thread count).
        clock: seconds of a monotonic clock, for ``ScanResult.started`` / ``duration_s`` (injectable).
    ``offer`` hands over a frame when the worker is idle and returns at once; ``results`` collects what
    finished. Never blocks the caller, except ``wait_idle`` (tests) and ``close``.
    """

    def __init__(self, detector, clock: Callable[[], float] = time.monotonic) -> None:
        self.detector = detector
        self._clock = clock
        self._cond = threading.Condition()
        self._job: tuple[Any, np.ndarray, float, float] | None = None    # key, frame, stamp, start time
        self._done: list[ScanResult] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name='fer_full_scan', daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._job is not None

    def offer(self, key: Any, bgr: np.ndarray, stamp: float) -> bool:
        """Scan ``bgr`` (uint8[H, W, 3], not modified afterwards by the caller) if idle; True if taken."""
        with self._cond:
            if self._closed or self._job is not None:
                return False
            self._job = (key, bgr, float(stamp), self._clock())
            self._cond.notify_all()
            return True

    def results(self) -> list[ScanResult]:
        """The scans finished since the last call (oldest first)."""
        with self._cond:
            done, self._done = self._done, []
            return done

    def wait_idle(self, timeout: float) -> bool:
        """Block until no scan is queued or running (True), or ``timeout`` seconds passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._job is None, timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._job is not None)
                if self._closed or self._job is None:
                    return
                key, bgr, stamp, started = self._job
            result = ScanResult(key, stamp, started=started)
            try:
                result.detections = self.detector.detect(bgr)
            except Exception as exc:  # a detector failure must not end the thread: the caller reports it
                result.error = f'{type(exc).__name__}: {str(exc).strip()}'
            result.duration_s = max(0.0, self._clock() - started)
            with self._cond:
                self._done.append(result)
                self._job = None
                self._cond.notify_all()


class FullScans:
    """The Pipeline's full-scan policy for every camera: scan this frame inline, hand it to the worker, or
    neither; and the worker's finished results.

    Args:
        config: the DetectorConfig in force (``full_scan_s``, ``full_scan_share``, ``idle_scan_s``,
            ``num_threads``; ``roi_scale``, ``max_side``, ``min_face_size`` for the scene-change gate).
        detector_factory: ``f(DetectorConfig) -> FaceDetector``; called once here for the worker's own
            detector (background only: its own session, ``num_threads`` or 1 thread).
        background: scan on the worker thread (True) or inline (False).
        clock: the worker's clock (scan durations for the share budget); tests inject one.
    """

    def __init__(self, config, detector_factory, background: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._factory = detector_factory
        self._clock = clock
        self.background = background
        self.schedule = ScanSchedule(config.full_scan_s, config.full_scan_share, config.idle_scan_s)
        self.scene = SceneChange(config.roi_scale, config.max_side, config.min_face_size)
        self._running: tuple[Any, float] | None = None     # (key, now at offer) of the scan in the worker
        self._planned: tuple | None = None   # (key, frame, stamp, now, thumbnail) for hand_over
        self.worker = self._new_worker(config) if background else None

    def _new_worker(self, config) -> FullScanWorker:
        return FullScanWorker(self._warm(self._factory(self._worker_config(config)), config), self._clock)

    @staticmethod
    def _warm(detector, config):
        """Run one blank frame of the largest size it will see: the first call of a new session allocates
        and plans (several times a normal scan), and it must not be the scan that looks for the first face."""
        side = config.max_side
        detector.detect(np.zeros((side * 3 // 4, side, 3), np.uint8))
        return detector

    @staticmethod
    def _worker_config(config):
        # one thread unless asked: the scan runs beside the ROI path, so its wall time delays no frame,
        # and one thread costs the least CPU per scan (measured: 13 ms vs 15-17 ms with two on 2 cores)
        return dataclasses.replace(config, num_threads=config.num_threads or 1)

    def set_config(self, config, same_detector: bool) -> None:
        """Apply a new DetectorConfig: thresholds in place, a new worker detector when the kind/model changed."""
        self.schedule.every_s, self.schedule.share = config.full_scan_s, config.full_scan_share
        self.schedule.idle_s = config.idle_scan_s
        self.scene.roi_scale, self.scene.max_side = config.roi_scale, config.max_side
        self.scene.min_face_size = config.min_face_size
        if self.worker is not None:
            if same_detector:
                self.worker.detector.config = self._worker_config(config)
            else:
                self.worker.close()
                self.worker = self._new_worker(config)
                self._running = None

    def plan(self, key: Any, bgr: np.ndarray, stamp: float, now: float,
             tracked: Sequence[Sequence[float]], lost: bool = False) -> bool:
        """Decide for one frame of camera ``key`` at ``now``; True = scan this frame inline.

        ``tracked``: the camera's tracked boxes (x, y, w, h); ``lost``: a track missed its last frame.
        Inline mode: when due (below) or when nothing is tracked. Background: when due and the worker is
        idle, keep the frame for ``hand_over`` (nothing tracked: due whenever the worker is free) and
        return False; True only
        when the worker has been stalled (STALL_MIN_S, STALL_FACTOR) and a scan is due.
        Due: ``full_scan_s`` after the last scan (the share budget may bring it forward); with the
        scene-change gate on (``ScanSchedule.gated``) only while a track is ``lost`` or the view outside
        the tracked faces changed since the last scan (``SceneChange``), otherwise ``idle_scan_s`` after it.
        """
        self._planned = None
        thumb = None
        due = not tracked or self.schedule.due(key, now, budget=self.background)
        if due and tracked and not lost and self.schedule.gated \
                and not self.schedule.due(key, now, budget=False, idle=True):
            due, thumb = self.scene.changed(key, bgr, tracked)
        if not due:
            return False
        if self.worker is not None:
            if not self.worker.busy:      # only this thread offers: still idle at hand_over
                self._planned = (key, bgr, stamp, now, thumb)
                return False
            stalled = self._running is not None and now - self._running[1] > self.stall_s
            if not stalled:
                return False
        self._started(key, bgr, now, thumb)
        return True

    def hand_over(self) -> None:
        """Give the worker the frame ``plan`` chose for a background scan; call it when that frame's own
        work is done. Why not at once: a scan started while the frame is still detecting and classifying
        shares the memory bandwidth and the interpreter with it (measured: the frame's ROI detection and
        classifier took ~4 ms longer, 10.4 against 6.3 ms per frame with one face); started after it, at
        30 Hz the scan (~10 ms) ends before the next frame arrives."""
        planned, self._planned = self._planned, None
        if planned is None or self.worker is None:
            return
        key, bgr, stamp, now, thumb = planned
        if self.worker.offer(key, bgr, stamp):
            self._started(key, bgr, now, thumb)
            self._running = (key, now)

    def _started(self, key: Any, bgr: np.ndarray, now: float, thumb: np.ndarray | None) -> None:
        self.schedule.started(key, now)
        if self.schedule.gated:              # the frame later ones are compared with
            self.scene.keep(key, bgr, thumb)

    @property
    def stall_s(self) -> float:
        """How long a background scan may run before the frames scan inline."""
        return max(STALL_MIN_S, STALL_FACTOR * self.schedule.every_s)

    def results(self) -> list[ScanResult]:
        """Background scans finished since the last call (their durations feed the share budget)."""
        if self.worker is None:
            return []
        done = self.worker.results()
        for result in done:
            self.schedule.finished(result.key, result.duration_s)
            if self._running is not None and self._running[0] == result.key:
                self._running = None
        return done

    def forget(self, key: Any) -> None:
        self.schedule.forget(key)
        self.scene.forget(key)

    def reset(self) -> None:
        """Every camera's next frame is due for a scan."""
        self.schedule = ScanSchedule(self.schedule.every_s, self.schedule.share, self.schedule.idle_s)
        self.scene = SceneChange(self.scene.roi_scale, self.scene.max_side, self.scene.min_face_size)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
