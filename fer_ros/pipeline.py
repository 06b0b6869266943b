"""The ROS-free perception pipeline: one BGR frame in, tracked per-face expressions and HRI commands out.

    detect (bounded input size) -> aligned or square crops (model's size/channels/normalisation)
    [+ their mirror images] -> ONE batched inference call for all faces -> per-face neutral baseline
    -> tracker (stable ids + smoothing) -> command mapper

Detection is ROI-assisted: each frame searches only squares around the tracks' last boxes
(``FaceDetector.detect(bgr, regions=...)``, several times cheaper than the whole frame), and the whole
frame is scanned at least every ``DetectorConfig.full_scan_s`` seconds and whenever nothing is tracked:
on a thread of its own beside the frames with ``PipelineConfig.background_scan`` (the node), on the
frame itself otherwise (reproducible offline). When, how results are merged and which are stale:
fer_ros.perception.full_scan.

The node, fer-infer, the bag evaluator and the benchmarks all run this class, so they measure and
publish exactly the same thing. The Pipeline is given its backend (core imports nothing from
``fer_ros.backends``: dependencies point from backends to core, never back):

    fer_ros.backends.create_pipeline(config)   # = Pipeline(config, backend_for(config),
                                               #            detector_factory=create_face_detector)
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from fer_ros.core.backend_options import BACKENDS, BackendOptions
from fer_ros.core.labels import SCARED, canonical_labels
from fer_ros.core.spec import ModelSpec
from fer_ros.core.types import TRACKED, Command, Detection, FaceResult, FrameResult
from fer_ros.core.validate import check_fields, setting
from fer_ros.hri.command_config import STOP, CommandConfig, load_command_config
from fer_ros.hri.commands import CommandMapper
from fer_ros.hri.decisions import Decisions, Publish
from fer_ros.hri.neutral_baseline import NeutralBaselineConfig, NeutralBaselines
from fer_ros.hri.people import People, PeopleConfig
from fer_ros.hri.stamps import StampConfig, StampPolicy
from fer_ros.perception.detectors import DetectorConfig, FaceDetector, check_bgr
from fer_ros.perception.full_scan import MAX_SCAN_AGE_S, FullScans, ScanResult
from fer_ros.perception.head_pose import AttentionConfig, estimate_head_pose, judge_attention, sharpness
from fer_ros.perception.landmarks import FaceLandmarker, landmarks_due
from fer_ros.perception.preprocess import (
    CROP_MODES,
    MAX_MARGIN,
    MIRROR_TTA_CHOICES,
    average_mirrors,
    crop_faces,
    with_mirrors,
)
from fer_ros.perception.smoothing import SmoothingConfig
from fer_ros.perception.tracking import FaceTracker, TrackerConfig

if TYPE_CHECKING:  # annotations only: at run time core never imports the backends package
    from fer_ros.backends.base import Backend
    from fer_ros.perception.embedding import FaceEmbedder


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline needs (validated on construction).

    model_path: classifier file; '' = fer_ros.util.paths.default_model_path() (the converted
        mini-Xception, or $FER_ROS_MODEL). backend: one of BACKENDS (fer_ros.backends.selection).
    backend_options: the backends' typed options (TensorRT precision, engine cache, INT8 calibration,
        threads; fer_ros.core.backend_options).
    commands_path: expression -> command YAML; '' = the packaged config/commands.yaml.
    crop_margin: the square crop's side is the face box's longer side * (1 + crop_margin), 0..2.
    crop_mode: 'aligned' (eyes level, from the detector's landmarks; the square crop for faces without
        landmarks) or 'square' (see fer_ros.perception.preprocess).
    mirror_tta: 'model' (the model's ModelSpec.mirror_tta), 'always' or 'never': classify each face together
        with its horizontal mirror in the same batch and average the two (doubles the batch).
    neutral: per-face neutral baselines (fer_ros.hri.neutral_baseline); inactive until requested.
    background_scan: run the whole-frame scans on a worker thread with its own detector, concurrently with
        the frames (the node), instead of on the frame they are due on (offline: output depends only on
        the frames and their stamps). See fer_ros.perception.full_scan.
    attention: when a face attends (fer_ros.perception.head_pose): only attending faces' non-STOP
        expressions command. people: person ids, enrolment, command authority (fer_ros.hri.people).
    identify: load the face embedding network (``embedder_model_path``, '' = the default from `make setup`)
        for re-identification and enrolment. people_file: the enrolled people's file ('' = not persisted).
    face_landmarks: load the 68-point landmark network (``landmark_model_path``, '' = the default) for head
        pose and the embedding crop (without it: the detector's five points, whose roll is unreliable).
    landmark_interval_s: a face's 68 landmarks are located at most this often (command clock); in between
        its last ones follow its box (moved and scaled with it). 0 = every frame.
    """

    model_path: str = ''
    backend: str = setting('auto', choices=BACKENDS)
    backend_options: BackendOptions = BackendOptions()
    detector: DetectorConfig = DetectorConfig()
    tracker: TrackerConfig = TrackerConfig()
    smoothing: SmoothingConfig = SmoothingConfig()
    commands_path: str = ''
    crop_margin: float = setting(0.2, low=0.0, high=MAX_MARGIN)
    crop_mode: str = setting('square', choices=CROP_MODES)
    mirror_tta: str = setting('model', choices=MIRROR_TTA_CHOICES)
    neutral: NeutralBaselineConfig = NeutralBaselineConfig()
    background_scan: bool = False
    attention: AttentionConfig = AttentionConfig()
    people: PeopleConfig = PeopleConfig()
    identify: bool = True
    embedder_model_path: str = ''
    people_file: str = ''
    face_landmarks: bool = True
    landmark_model_path: str = ''
    landmark_interval_s: float = setting(0.2, low=0.0, high=10.0)

    def __post_init__(self) -> None:
        check_fields(self)
        for name, cls in (('backend_options', BackendOptions), ('detector', DetectorConfig), ('tracker', TrackerConfig),
                          ('smoothing', SmoothingConfig), ('neutral', NeutralBaselineConfig),
                          ('attention', AttentionConfig), ('people', PeopleConfig)):
            if not isinstance(getattr(self, name), cls):
                got = type(getattr(self, name)).__name__
                raise ValueError(f'PipelineConfig.{name} must be a {cls.__name__}, got {got}')


@dataclass
class FrameAnalysis:
    """Stateless per-frame result: detections and this frame's (unsmoothed) classifier output."""

    detections: list[Detection]
    probabilities: np.ndarray                 # float32[N, K], model label order, rows sum to 1
    timing_ms: dict[str, float] = field(default_factory=dict)   # detect, preprocess, infer
    detect_mode: str = 'full'                 # 'full' (whole frame) or 'roi' (only the given regions)


def mirror_enabled(mirror_tta: str, spec) -> bool:
    """Whether faces are classified with their mirror image: ``mirror_tta`` 'always' / 'never', or 'model'
    (the model file's ``ModelSpec.mirror_tta``). One rule for the node, the bag evaluation and fer-infer."""
    return {'always': True, 'never': False}.get(mirror_tta, bool(spec.mirror_tta))


def analyze_frame(bgr: np.ndarray, detector: FaceDetector, backend: Backend, margin: float,
                  regions=None, *, crop_mode: str = 'square', mirror: bool = False) -> FrameAnalysis:
    """Detect and classify every face of one frame (stateless; used by Pipeline and fer-infer).

    Args:
        bgr: uint8[H, W, 3] BGR frame.
        margin: crop margin (see fer_ros.perception.preprocess.square_box).
        regions: None = detect on the whole frame; else face boxes (x, y, w, h) to search around
            (see ``FaceDetector.detect``).
        crop_mode: 'aligned' or 'square' (fer_ros.perception.preprocess.crop_faces).
        mirror: also classify each face's mirror image (same call: a 2N batch) and average the pairs.
    Returns:
        FrameAnalysis with float32[N, K] probabilities (one batched inference call for all N faces)
        and timing_ms {'detect', 'preprocess', 'infer'} (milliseconds).
    Raises:
        ValueError: ``bgr`` is not a non-empty uint8[H, W, 3] array.
    """
    check_bgr(bgr, 'analyze_frame')
    t0 = time.perf_counter()
    detections = detector.detect(bgr) if regions is None else detector.detect(bgr, regions=regions)
    t1 = time.perf_counter()
    probabilities, timing = classify_faces(bgr, detections, backend, margin, crop_mode=crop_mode, mirror=mirror)
    return FrameAnalysis(detections, probabilities, {'detect': (t1 - t0) * 1e3, **timing},
                         'full' if regions is None else 'roi')


def classify_faces(bgr: np.ndarray, detections: list[Detection], backend: Backend, margin: float, *,
                   crop_mode: str = 'square', mirror: bool = False) -> tuple[np.ndarray, dict[str, float]]:
    """The classifier's float32[N, K] probabilities for the N detected faces of ``bgr`` (ONE inference
    call, 2N rows with ``mirror``), and timing_ms {'preprocess', 'infer'}. See ``analyze_frame``."""
    spec = backend.spec
    if not detections:
        return np.zeros((0, spec.num_classes), np.float32), {'preprocess': 0.0, 'infer': 0.0}
    t0 = time.perf_counter()
    batch = crop_faces(bgr, [d.box for d in detections], spec, margin, [d.landmarks for d in detections], crop_mode)
    if mirror:
        batch = with_mirrors(batch)
    t1 = time.perf_counter()
    probabilities = backend.infer(batch)
    if mirror:
        probabilities = average_mirrors(probabilities)
    t2 = time.perf_counter()
    return probabilities, {'preprocess': (t1 - t0) * 1e3, 'infer': (t2 - t1) * 1e3}


def stop_guards(config: CommandConfig) -> dict[str, float]:
    """STOP expressions -> the probability from which the command mapper starts STOP evidence (their
    rule's min_confidence; summed in units of these levels, fer_ros.hri.commands): 'scared' (always,
    with STOP's own min_confidence when no rule maps it) and every expression commands.yaml maps to
    STOP. No neutral-baseline correction may weaken a face that shows STOP evidence at these levels, so
    a calibration can never keep a STOP from starting; below them (a resting face that reads a little
    scared) it corrects, which also lets a calibrated person's resting face release a STOP."""
    guards = {SCARED: config.commands[STOP].min_confidence}
    guards.update({r.expression: r.min_confidence for r in config.rules.values() if r.command == STOP})
    return guards


# A camera's faces count for commands while its last frame is at most this old (command clock).
FACES_FRESH_S = 0.5


def check_model_output(backend: Backend, model: str) -> None:
    """Run one blank input through the model at start: its output must be one probability per label.

    Raises:
        ValueError: the output shape is not [1, len(labels)] (a model that would fail every frame).
    """
    spec = backend.spec
    blank = np.zeros((1, spec.channels, spec.height, spec.width), np.float32)
    out = np.asarray(backend.infer(blank))
    if out.shape != (1, len(backend.labels)):
        raise ValueError(f'model {model}: output shape {list(out.shape)} does not match its '
                         f'{len(backend.labels)} labels {list(backend.labels)} (expected [1, {len(backend.labels)}])')


@dataclass
class _Camera:
    """Per-camera state: tracks, their epoch, background scans waiting for the next frame, its latest
    faces for the command mapper (tracked, tentative and coasting) and their command time."""

    tracker: FaceTracker
    epoch: int                    # new when the tracks are reset: scans of older frames are stale
    scans: list[ScanResult] = field(default_factory=list)
    faces: list = field(default_factory=list)
    command_time: float = float('-inf')


class Pipeline:
    """detect -> crop -> one batched inference -> track/smooth -> commands.

    Args:
        config: see PipelineConfig.
        backend: the loaded classifier (``fer_ros.backends.backend_for(config)`` builds the one
            ``config`` names; tests and benchmarks may pass their own).
        detector_factory: ``f(DetectorConfig) -> FaceDetector``, used at construction and when
            ``set_detector_config`` changes the detector's kind, model or backend:
            ``fer_ros.backends.create_face_detector`` (``fer_ros.backends.create_pipeline`` passes it);
            with ``background_scan`` also once for the scan thread's own detector.
        scan_clock: the background scan's clock for its durations (the share budget); tests inject one.
        embedder: the face embedding network for person ids and enrolment (fer_ros.hri.people), or None
            (``fer_ros.backends.create_face_embedder``; ``create_pipeline`` passes it when config.identify).
        landmarker: the 68-point landmark network for head pose, or None (the detector's five points).
    Raises:
        FileNotFoundError: a missing commands file. ValueError: invalid configuration.
    Call process, reset and set_detector_config from one thread or under one lock (the background scan's
    worker thread only ever touches its own detector and a frame handed to it); tick, hold, stalled_for and
    camera_clock from any thread at any time: they go through the command section
    (fer_ros.hri.decisions), which inference never holds. Call ``close``.
    """

    def __init__(self, config: PipelineConfig, backend: Backend, *,
                 detector_factory: Callable[[DetectorConfig], FaceDetector],
                 scan_clock: Callable[[], float] = time.monotonic, embedder: FaceEmbedder | None = None,
                 landmarker: FaceLandmarker | None = None) -> None:
        if not isinstance(config, PipelineConfig):
            raise ValueError(f'config must be a PipelineConfig, got {type(config).__name__}')
        self.config = config
        self._backend = backend
        self._detector_factory = detector_factory
        self._detector = detector_factory(config.detector)
        # Canonical words from here on ('fear' -> 'scared'); unknown words or a model that lacks an
        # expression mapped to STOP fail here, at start, instead of on every frame or silently.
        self._labels = canonical_labels(backend.labels, f'model {config.model_path or "(default model)"}')
        self._mapper = CommandMapper(load_command_config(config.commands_path or None), self._labels)
        # stamps and mapper behind one lock no inference holds (frames, the node's clock, transitions)
        stamps = StampPolicy(StampConfig(clock_reset_s=self._mapper.config.clock_reset_s))
        self._decisions = Decisions(self._mapper, stamps)
        self._face_numbers = itertools.count(1)     # face ids are unique across cameras
        self._cameras: dict[str, _Camera] = {}
        self._epochs = itertools.count(1)
        self._scans = FullScans(config.detector, detector_factory, config.background_scan, scan_clock)
        self.mirror = mirror_enabled(config.mirror_tta, self._backend.spec)
        self.neutral = NeutralBaselines(config.neutral, self._labels, stop_guards(self._mapper.config))
        self.people = People(config.people, embedder, config.people_file, self._labels, self.neutral)
        self.landmarker = landmarker
        self._attending: dict[str, bool] = {}      # face id -> attending in its last frame (hysteresis)
        self._located: dict[str, tuple[float, tuple, np.ndarray]] = {}   # face id -> (when, box, 68 landmarks)

    @property
    def spec(self) -> ModelSpec:
        return self._backend.spec

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's class order, as canonical expression words."""
        return self._labels

    @property
    def command_config(self) -> CommandConfig:
        return self._mapper.config

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def backend_name(self) -> str:
        """The backend choice the classifier runs as ('cpu', 'tensorrt'...; the implementation's name when
        the backend was constructed directly)."""
        return self._backend.choice or self._backend.name

    @property
    def detector_name(self) -> str:
        return self._detector.name

    @property
    def placement(self) -> list[str]:
        """Where both models run and, for 'auto', why: one line each (the node logs them when it configures)."""
        b, d = self._backend, self._detector
        lines = [f'classifier on {self.backend_name} ({b.device}), face detector {d.name} on {d.device}']
        return lines + [why for why in (b.selected, d.selected) if why]

    def set_detector_config(self, config: DetectorConfig) -> None:
        """Change detector settings at run time (thresholds in place; a new detector if the kind changes).

        ``full_scan_s`` and the ROI settings apply from the next frame."""
        if not isinstance(config, DetectorConfig):
            raise ValueError(f'config must be a DetectorConfig, got {type(config).__name__}')
        old = self._detector.config
        same = (config.kind, config.model_path, config.backend) == (self._detector.name, old.model_path, old.backend)
        if same:
            self._detector.config = config
        else:
            self._detector = self._detector_factory(config)
        self._scans.set_config(config, same)

    def process(self, bgr: np.ndarray, stamp: float, camera: str = '', arrival: float | None = None,
                publish: Publish | None = None) -> FrameResult:
        """One frame through the whole pipeline.

        Args:
            bgr: uint8[H, W, 3] BGR frame. stamp: frame time in seconds (the image header's stamp).
            camera: the camera (header frame_id): each camera has its own tracks and stamp timeline.
            arrival: when the frame was received, seconds of a monotonic clock (the node's); None = stamp
                (offline, where stamps are the only clock). See fer_ros.hri.stamps.
        Returns:
            FrameResult: confirmed tracked faces, commands to publish now, timing_ms {'detect' (whole
            detection, either mode), 'preprocess', 'infer', 'track' (tracker + command mapper),
            'total', and 'scan' (the background scan merged before this frame, when one was)},
            num_detections, detect_mode ('full': the whole frame here; 'roi': only around the tracks);
            ``skipped`` names the stamp problem of a frame that was not processed (then nothing else is
            set), ``new_timeline`` says the camera's tracks were reset first (its clock jumped),
            ``scan_error`` what a background scan that ended since the last frame raised.
            publish: called with the frame's commands inside the command section (fer_ros.hri.decisions),
                so they leave in decision order with the clock's commands (the node's command channel).
        """
        t0 = time.perf_counter()
        now = float(stamp if arrival is None else arrival)
        verdict = self._decisions.judge(camera, float(stamp), now)
        for gone in verdict.forgotten:       # its tracks, scan schedule and kept thumbnail go with it
            dropped = self._cameras.pop(gone, None)
            if dropped is not None:
                self._scans.forget((gone, dropped.epoch))
        scan_error = self._collect_scans()
        if verdict.skip:
            return FrameResult(stamp=float(stamp), labels=self.labels, camera=camera, skipped=verdict.skip,
                               scan_error=scan_error)
        try:
            cam = self._cameras.get(camera)
            if cam is None:
                tracker = FaceTracker(self.config.tracker, self.config.smoothing, self._labels,
                                      numbers=self._face_numbers)
                tracker.observe, tracker.correct = self.neutral.observe, self.neutral.correct
                cam = self._cameras[camera] = _Camera(tracker, next(self._epochs))
            elif verdict.new_timeline:
                cam.tracker.reset()
                self._scans.forget((camera, cam.epoch))
                cam.epoch, cam.scans = next(self._epochs), []
            scan_ms = self._merge_scans(cam, verdict.stamp)
            regions = cam.tracker.active_boxes()
            key = (camera, cam.epoch)
            check_bgr(bgr, 'Pipeline.process')     # before the scan schedule looks at it or hands it over
            inline = self._scans.plan(key, bgr, verdict.stamp, now, regions, lost=cam.tracker.lost_any)
            analysis = analyze_frame(bgr, self._detector, self._backend, self.config.crop_margin,
                                     None if inline else regions, crop_mode=self.config.crop_mode,
                                     mirror=self.mirror)
            t1 = time.perf_counter()
            faces = cam.tracker.update(analysis.detections, analysis.probabilities, verdict.stamp)
            # the mapper weighs tentative and coasting faces too: a missed detection never ends evidence
            t_people = time.perf_counter()
            command_faces = cam.tracker.command_faces()      # the published faces first (the same objects)
            # cam.command_time is still its previous frame's: the camera's frame period for the landmarks
            self._attend_and_identify(bgr, command_faces, verdict.command_time,
                                      verdict.command_time - cam.command_time)
            people_ms = (time.perf_counter() - t_people) * 1e3
            cam.faces, cam.command_time = command_faces, verdict.command_time
            self.neutral.end_frame(verdict.command_time, self.visible_face_ids())
            commands = self._decisions.frame(self._faces_in_view(verdict.command_time), verdict.command_time,
                                             publish)
            self._scans.hand_over()       # the background scan starts once this frame's work is done
        except BaseException:
            self._decisions.abandon()     # the clock must not wait for a frame that will never decide
            raise
        t2 = time.perf_counter()
        timing = dict(analysis.timing_ms, track=(t2 - t1) * 1e3 - people_ms, people=people_ms,
                      total=(t2 - t0) * 1e3)
        if scan_ms is not None:
            timing['scan'] = scan_ms
        return FrameResult(stamp=float(stamp), labels=self.labels, faces=faces, commands=commands,
                           timing_ms=timing, num_detections=len(analysis.detections),
                           detect_mode=analysis.detect_mode, camera=camera, new_timeline=verdict.new_timeline,
                           scan_error=scan_error)

    def _collect_scans(self) -> str:
        """Hand each finished background scan to its camera (dropped when the camera is gone or its tracks
        were reset since the frame was scanned); returns the last failed scan's error ('' if none)."""
        error = ''
        for result in self._scans.results():
            if result.error:
                error = f'background full-frame scan failed: {result.error}'
                continue
            camera, epoch = result.key
            cam = self._cameras.get(camera)
            if cam is not None and cam.epoch == epoch:
                cam.scans.append(result)
        return error

    def _merge_scans(self, cam: _Camera, stamp: float) -> float | None:
        """Merge the camera's waiting scans into its tracker before the frame at ``stamp`` (the stale rule
        of fer_ros.perception.full_scan: only scans of older frames, at most MAX_SCAN_AGE_S older).
        Returns the newest merged scan's duration in ms, or None."""
        merged = None
        for result in cam.scans:
            if 0.0 < stamp - result.stamp <= MAX_SCAN_AGE_S:
                cam.tracker.add_candidates(result.detections, result.stamp)
                merged = result.duration_s * 1e3
        cam.scans = []
        return merged

    def _attend_and_identify(self, bgr: np.ndarray, faces: list[FaceResult], now: float, period: float) -> None:
        """Head pose and attention of each face detected in this frame, its person (fer_ros.hri.people), and
        whether its non-STOP expressions may command: attending, and enrolled under command_authority
        'enrolled'. A face the mapper weighs without a detection in this frame (tentative or coasting)
        keeps its track's last attention verdict (a new one: not attending) and person. ``period``: the time
        since the camera's previous frame (command clock)."""
        alive = self.visible_face_ids()
        self._attending = {f: a for f, a in self._attending.items() if f in alive}
        self._located = {f: v for f, v in self._located.items() if f in alive}
        seen = [f for f in faces if f.tracking == TRACKED]
        if self.landmarker is not None and seen:
            self._locate_landmarks(bgr, seen, now, period)
        for face in seen:
            face.head_pose = estimate_head_pose(face.face_points if face.face_points is not None else face.landmarks)
            face.attending, face.attention = judge_attention(face.head_pose, face.box, sharpness(bgr, face.box),
                                                             self.config.attention, self._attending.get(face.face_id))
            self._attending[face.face_id] = face.attending
        self.people.update(bgr, seen, alive, now)
        for face in faces:
            if face.tracking != TRACKED:
                face.attending = self._attending.get(face.face_id, False)
                face.attention = '' if face.attending else 'not seen in this frame'
                face.person_id, face.person_name = self.people.person(face.face_id)
            face.may_command = face.attending and self.people.may_command(face.person_id)

    def _locate_landmarks(self, bgr: np.ndarray, faces: list[FaceResult], now: float, period: float) -> None:
        """Each face's 68 landmarks: located (one batched call) when due (``landmarks_due``: new faces, and
        spread over the frames those older than landmark_interval_s), else those moved and scaled with its box."""
        assert self.landmarker is not None, 'called only with a landmarker'
        ids = landmarks_due([f.face_id for f in faces], {f: v[0] for f, v in self._located.items()}, now,
                            self.config.landmark_interval_s, period)
        due = [f for f in faces if f.face_id in ids]
        for face, points in zip(due, self.landmarker.locate(bgr, [f.box for f in due]) if due else []):
            self._located[face.face_id] = (now, face.box, points)
        for face in faces:
            _, box, points = self._located[face.face_id]
            scale = np.array([face.box[2] / box[2], face.box[3] / box[3]], np.float32)
            face.face_points = (points - np.array(box[:2], np.float32)) * scale + np.array(face.box[:2], np.float32)

    def visible_face_ids(self) -> list[str]:
        """Ids of the faces tracked now, every camera's (what a calibration request may name)."""
        return [face_id for cam in self._cameras.values() for face_id in cam.tracker.face_ids]

    def _faces_in_view(self, now: float) -> list:
        """Every camera's latest faces, from cameras that sent a frame in the last FACES_FRESH_S of
        command time: commands are decided on what all cameras see (one camera: exactly its faces)."""
        return [f for cam in self._cameras.values() if now - cam.command_time <= FACES_FRESH_S for f in cam.faces]

    def tick(self, arrival: float, publish: Publish | None = None) -> list[Command]:
        """Advance the command clock without a frame (HOLD, heartbeats, HOLD for a stalled frame); call a few
        times a second, from any thread (it never waits for inference).

        arrival: now, on the clock given to ``process`` as ``arrival`` (or the stamps' clock offline).
        publish: see ``process``."""
        return self._decisions.tick(float(arrival), publish)

    def hold(self, arrival: float, final: bool = False, publish: Publish | None = None) -> list[Command]:
        """HOLD now: the node starts, stops or shuts down (fer_ros.hri.commands.CommandMapper.hold)."""
        return self._decisions.hold(float(arrival), final, publish)

    def stalled_for(self, arrival: float) -> float:
        """Seconds a frame has been in processing beyond the stall bound (0.0: none); see fer_ros.hri.decisions."""
        return self._decisions.stalled_for(float(arrival))

    def camera_clock(self, arrival: float) -> tuple[str, float] | None:
        """(camera, its clock now) of the camera that sent the last processed frame: the frame_id and
        stamp for timer-driven outputs. None before the first frame."""
        return self._decisions.camera_clock(float(arrival))

    def reset(self, keep_command: bool = True) -> None:
        """Forget tracks, timelines, evidence, neutral baselines and a calibration in progress (a bag
        restart, a deactivation); the next frame is scanned whole (inline, or handed to the background
        scan). The command clock keeps running.

        keep_command: keep the command in force (a latched STOP stays latched); False: back to no
            command (the node stopped looking and published its final HOLD)."""
        self._cameras.clear()
        self._scans.reset()
        self._decisions.reset(keep_command)
        self.neutral.clear()

    def warm_up(self, size: tuple[int, int] = (640, 480)) -> dict[str, float]:
        """Run every model once at start, so that no session is created or run for the first time in the
        hot path (when a new, possibly frightened, person appears): a full-frame detection, an ROI
        detection (yunet's one-thread ROI session) and the classifier at its largest batch (max_faces
        faces, twice that with mirror TTA). ``size``: (width, height) of the full frame. Returns the
        time of each, in ms."""
        width, height = size
        frame = np.full((height, width, 3), 128, np.uint8)
        side = min(width, height) / 4
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        self._detector.detect(frame)
        t1 = time.perf_counter()
        self._detector.detect(frame, regions=[((width - side) / 2, (height - side) / 2, side, side)])
        t2 = time.perf_counter()
        spec = self._backend.spec
        batch = self._detector.config.max_faces * (2 if self.mirror else 1)
        self._backend.infer(np.zeros((batch, spec.channels, spec.height, spec.width), np.float32))
        t3 = time.perf_counter()
        times.update(full_frame_detection=(t1 - t0) * 1e3, roi_detection=(t2 - t1) * 1e3,
                     **{f'classifier_batch_{batch}': (t3 - t2) * 1e3})
        return times

    def close(self) -> None:
        """Stop the background scan's thread and release the backend's (and the people networks') resources."""
        self._scans.close()
        self._backend.close()
        for network in (self.people.embedder, self.landmarker):
            if network is not None:
                network.close()
