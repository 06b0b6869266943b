"""The node's parameters: one table that declares, documents, validates and maps them.

The table is the single source for: `declare_parameter` calls (description, range, read-only flag),
validation at start and at run time, config/fer.yaml and the parameter table of docs/integration.md (both
generated: `python -m fer_ros.settings.params [--markdown]`; tests check them) and the launch file (a test
checks every parameter it sets exists here). A parameter that sets a core config field takes its
default, choices and range from that field (``fer_ros.core.validate.setting``), so they are declared
once; only the node's own parameters (QoS, rates, outputs) are defined here. No rclpy import at
module level, so the table can be checked without ROS.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap
from dataclasses import dataclass, replace
from typing import Any

from fer_ros.core.backend_options import BackendOptions
from fer_ros.core.validate import field_limits, range_problem
from fer_ros.hri.neutral_baseline import NeutralBaselineConfig
from fer_ros.hri.people import PeopleConfig
from fer_ros.hri.people_store import STORE_FILE
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.head_pose import AttentionConfig
from fer_ros.perception.smoothing import SmoothingConfig
from fer_ros.perception.tracking import TrackerConfig
from fer_ros.pipeline import PipelineConfig
from fer_ros.util.paths import default_people_dir

NODE_NAME = 'fer_node'


class ParameterError(ValueError):
    """A parameter value is invalid; the message names the parameter."""


@dataclass(frozen=True)
class ParamDef:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None          # inclusive range for numbers
    high: float | None = None
    read_only: bool = True            # False: may change at run time (validated in a callback)
    low_open: bool = False            # low itself excluded (validation only; ROS ranges are closed)
    min_nonzero: float | None = None  # when set, a non-zero value must be at least this (0 keeps its 'off' meaning)

    @classmethod
    def of(cls, name: str, config: type, field: str, description: str, read_only: bool = True) -> ParamDef:
        """The parameter that sets ``config.field``: default, choices and range from that field."""
        limits = field_limits(config, field)
        return cls(name, limits.default, description, limits.choices, limits.low, limits.high, read_only,
                   limits.low_open)

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to the default's type, or raise ParameterError naming the parameter."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ParameterError(f'parameter {self.name!r}: expected {kind.__name__}, got {value!r}')
        if self.choices and value not in self.choices:
            raise ParameterError(f'parameter {self.name!r}: {value!r} is not one of {list(self.choices)}')
        problem = (range_problem(value, self.low, self.high, low_open=self.low_open, integer=kind is int)
                   if self.low is not None else None)
        if problem:
            raise ParameterError(f'parameter {self.name!r}: {problem}')
        if self.min_nonzero is not None and value != 0 and value < self.min_nonzero:
            raise ParameterError(f'parameter {self.name!r}: must be 0 (off) or >= {self.min_nonzero:g}, got {value!r}')
        return value


PARAMETERS: tuple[ParamDef, ...] = (
    # --- input ---
    ParamDef('image_transport', 'raw', "'raw': subscribe to `image` (sensor_msgs/Image); "
             "'compressed': subscribe to `image/compressed` (sensor_msgs/CompressedImage, jpeg/png)",
             choices=('raw', 'compressed')),
    ParamDef('reliability', 'best_effort', "QoS reliability of the image subscription. 'best_effort' "
             "(sensor-data QoS) connects to best-effort and reliable cameras alike",
             choices=('best_effort', 'reliable')),
    ParamDef('qos_depth', 1, 'QoS history depth of the image subscription (1 = latest frame only)', low=1, high=100),
    ParamDef('max_rate_hz', 0.0, 'process at most this many frames per second (0 = as fast as possible; '
             'at least 1, so the node never looks away from the camera for more than a second)',
             low=0.0, high=1000.0, read_only=False, min_nonzero=1.0),
    ParamDef('max_image_pixels', 40_000_000, 'frames with more pixels than this are rejected (reported in '
             'diagnostics) instead of processed', low=1, high=500_000_000, read_only=False),
    # --- model ---
    ParamDef.of('model_path', PipelineConfig, 'model_path', "ONNX model (or TensorRT .engine / PyTorch checkpoint "
                "for those backends); '' = the default FER2013 mini-Xception from `make setup`"),
    ParamDef.of('backend', PipelineConfig, 'backend', "where the classifier runs: 'cpu' = ONNX Runtime on the CPU; "
                "'cuda' = ONNX Runtime's CUDA provider (onnxruntime-gpu); 'tensorrt' = a native TensorRT engine "
                "(TensorRT 10.3-11.x + cuda-python), built once and cached; 'tensorrt-ep' = ONNX Runtime's TensorRT "
                "provider (onnxruntime-gpu with TensorRT 10); 'torch' = a PyTorch checkpoint on torch_device; 'auto' = "
                "the first of tensorrt, tensorrt-ep, cuda, cpu this machine can run, logged once. An explicit choice "
                "that cannot run stops the start with one message naming where its library comes from"),
    ParamDef.of('onnxruntime_threads', BackendOptions, 'intra_op_threads',
                'ONNX Runtime threads per classifier call (backend cpu)'),
    ParamDef.of('tensorrt_precision', BackendOptions, 'precision', "TensorRT precision of both models' engines "
                "(backends tensorrt and tensorrt-ep): fp16 = an fp16 copy of the ONNX as a strongly typed network; "
                "int8 = the classifier calibrated on tensorrt_int8_calib_dir, TensorRT 10 only (the detector then "
                "runs fp16); a prebuilt .engine keeps its own"),
    ParamDef.of('tensorrt_engine_cache_dir', BackendOptions, 'engine_cache_dir', "folder of cached TensorRT "
                "engines of both models and of ONNX Runtime's TensorRT provider, created when missing; '' = "
                "$FER_ROS_ENGINE_CACHE, else ~/.cache/fer_ros/engines"),
    ParamDef.of('tensorrt_max_batch', BackendOptions, 'max_batch', 'largest batch (faces per call) of a TensorRT '
                'engine built from ONNX; more faces run in chunks'),
    ParamDef.of('tensorrt_int8_calib_dir', BackendOptions, 'int8_calib_dir', "folder of face-crop images for "
                "INT8 calibration (tensorrt_precision = int8); '' = none"),
    ParamDef.of('torch_device', BackendOptions, 'torch_device', "torch device of the torch backend ('cpu', "
                "'cuda', 'cuda:1')"),
    ParamDef.of('crop_margin', PipelineConfig, 'crop_margin', 'margin added around each face box before the '
                'square crop (fraction of size)'),
    ParamDef.of('crop_mode', PipelineConfig, 'crop_mode', "'aligned': rotate each face so the eyes are level and "
                "frame it by the detector's five landmarks (faces without landmarks, e.g. from haar, keep the "
                "square crop); 'square': the square around the face box"),
    ParamDef.of('mirror_tta', PipelineConfig, 'mirror_tta', "classify each face together with its mirror image in "
                "the same batch and average the two: 'model' = the model file's default, 'always', 'never' "
                "(not on/off: YAML reads those as booleans)"),
    ParamDef.of('neutral_calibration_s', NeutralBaselineConfig, 'duration_s', 'seconds of frames '
                '~/calibrate_neutral collects when a request gives no duration', read_only=False),
    # --- face detection ---
    ParamDef.of('detector', DetectorConfig, 'kind', "face detector: 'yunet' (libfacedetection CNN as ONNX, on "
                "detector_backend), 'yuface' (the same CNN, its x86_64 C++ binding) or 'haar' (OpenCV)"),
    ParamDef.of('detector_backend', DetectorConfig, 'backend', "where 'yunet' runs, the same choices as backend "
                "(but torch); its TensorRT engines take inputs up to the larger of detector_max_side and the ROI "
                "crops, larger ones are downscaled to fit"),
    ParamDef.of('detector_model_path', DetectorConfig, 'model_path',
                "the 'yunet' ONNX model; '' = the default from `make setup`"),
    ParamDef.of('detector_max_side', DetectorConfig, 'max_side', 'detection runs on a copy downscaled to this '
                'longest side (pixels)', read_only=False),
    ParamDef.of('detector_full_scan_s', DetectorConfig, 'full_scan_s', 'the whole frame is scanned for new faces at '
                'least every this many seconds (and whenever nothing is tracked); in between only around the '
                'tracked faces (fast). 0 = every frame. Bounds how late a new face is seen (docs/performance.md)',
                read_only=False),
    ParamDef.of('detector_full_scan_share', DetectorConfig, 'full_scan_share', 'the background scan also starts as '
                'soon as the previous one finished while scanning takes at most this share of one core '
                '(1 = back to back)', read_only=False),
    ParamDef.of('detector_idle_scan_s', DetectorConfig, 'idle_scan_s', 'scene-change gate: while every tracked '
                'face was found in the last frame and the view outside them has not changed since the last scan '
                '(a gray thumbnail), the whole frame is scanned only every this many seconds instead of every '
                'detector_full_scan_s; saves CPU in a still scene. 0 (or not above detector_full_scan_s) = off. '
                'Bounds how late a face that appears without visible change is seen (docs/performance.md)',
                read_only=False),
    # the node scans in the background by default; PipelineConfig's own default (inline) is for offline use
    replace(ParamDef.of('detector_background_scan', PipelineConfig, 'background_scan', 'scan the whole frame on a '
                        'thread of its own, concurrently with the frames (no frame waits for it); false = on the '
                        'frame it is due on, as the offline tools do (reproducible; fer-eval-bag --lockstep sets '
                        'it)'), default=True),
    ParamDef.of('min_face_size', DetectorConfig, 'min_face_size', 'smallest face side to report, in source-image '
                'pixels', read_only=False),
    ParamDef.of('detection_threshold', DetectorConfig, 'confidence_threshold', 'minimum detector confidence',
                read_only=False),
    ParamDef.of('max_faces', DetectorConfig, 'max_faces', 'at most this many faces (highest scores) per frame',
                read_only=False),
    # --- tracking and smoothing ---
    ParamDef.of('tracker_iou_threshold', TrackerConfig, 'iou_threshold', 'IoU needed to continue a track'),
    ParamDef.of('tracker_min_hits', TrackerConfig, 'min_hits',
                'a face is published after this many detections'),
    ParamDef.of('tracker_coast_s', TrackerConfig, 'coast_s',
                'seconds a face survives without a detection; meanwhile it keeps feeding the command mapper '
                'with its last state (a missed detection never interrupts STOP evidence)'),
    ParamDef.of('smoothing', SmoothingConfig, 'method', "temporal smoothing of probabilities: 'ema', 'window' or "
                "'none'"),
    ParamDef.of('smoothing_tau_s', SmoothingConfig, 'tau_s', 'EMA time constant in seconds: a frame dt s after '
                'the previous one weighs 1 - exp(-dt / tau_s) (smoothing = ema)'),
    ParamDef.of('smoothing_window_s', SmoothingConfig, 'window_s', 'seconds of frames averaged (smoothing = window)'),
    # --- commands ---
    ParamDef.of('commands_file', PipelineConfig, 'commands_path',
                "expression-to-command mapping YAML; '' = the packaged config/commands.yaml"),
    ParamDef('command_tick_hz', 10.0, 'rate of the timer that emits HOLD and heartbeat commands when '
             'frames stop arriving', low=0.1, high=100.0),
    # --- attention and people (docs/people.md) ---
    ParamDef.of('attention_max_yaw_deg', AttentionConfig, 'max_yaw_deg', 'largest |head yaw| (degrees) of an '
                'attending face; only attending faces command (STOP: every face)'),
    ParamDef.of('attention_max_pitch_deg', AttentionConfig, 'max_pitch_deg',
                'largest |head pitch| (degrees) of an attending face'),
    ParamDef.of('attention_min_face_px', AttentionConfig, 'min_face_px',
                "an attending face's box is at least this many pixels on its shorter side"),
    ParamDef.of('attention_min_sharpness', AttentionConfig, 'min_sharpness', "an attending face's sharpness "
                '(variance of the Laplacian of its box at 64x64 gray) is at least this (0 = not checked)'),
    ParamDef.of('command_authority', PeopleConfig, 'command_authority', "who commands: 'anyone' (every "
                "attending face) or 'enrolled' (only enrolled people's attending faces); STOP from any face"),
    ParamDef.of('head_pose_landmarks', PipelineConfig, 'face_landmarks', "load the 68-point landmark network for "
                "head pose and the embedding crop (false: the detector's five points; roll then unreliable)"),
    ParamDef.of('landmark_interval_s', PipelineConfig, 'landmark_interval_s', "a face's 68 landmarks (head pose) "
                'are located at most this often, faces due together spread over the frames; in between they follow '
                'its box (0 = every frame)'),
    ParamDef.of('identify_people', PipelineConfig, 'identify', 'load the face embedding network: person ids '
                'that survive track loss, enrolment (false: every track is its own anonymous person)'),
    ParamDef.of('face_embedder_model_path', PipelineConfig, 'embedder_model_path',
                "the face embedding ONNX model; '' = the default from `make setup`"),
    ParamDef('people_dir', '', "folder of the enrolled people's file (people.json: names, embeddings, "
             "baselines; no image); '' = $FER_ROS_PEOPLE_DIR, else $ROS_HOME/fer_ros (~/.ros/fer_ros)"),
    ParamDef.of('people_match_threshold', PeopleConfig, 'match_threshold', 'largest embedding distance between '
                'two views of the same person (make bench-people measures it)'),
    ParamDef.of('people_return_window_s', PeopleConfig, 'return_window_s', 'an anonymous person who comes back '
                'within this many seconds keeps their person id and baseline'),
    ParamDef.of('enrol_duration_s', PeopleConfig, 'enrol_duration_s',
                'seconds of frames ~/enroll_person collects when a request gives no duration'),
    # --- outputs ---
    ParamDef('publish_debug_image', True, 'publish `debug_image` (annotated frames); rendered only while '
             'someone subscribes', read_only=False),
    ParamDef('hri_output', False, 'also publish the ROS4HRI (REP-155) face topics for ros4hri consumers: '
             '/humans/faces/tracked and per face /humans/faces/<id>/roi, expression and cropped (needs '
             "ros4hri's hri_msgs; docs/integration.md, ROS4HRI)"),
    ParamDef('diagnostics_period_s', 1.0, 'period of /diagnostics messages (seconds)', low=0.1, high=60.0),
)
PARAMETERS_BY_NAME: dict[str, ParamDef] = {p.name: p for p in PARAMETERS}
# Parameters rclpy itself declares on every node (accepted, validated by rclpy, not ours to map).
ROS_PARAMETERS: tuple[str, ...] = ('use_sim_time', 'start_type_description_service')
ROS_PARAMETER_PREFIXES: tuple[str, ...] = ('qos_overrides.',)


def is_ros_parameter(name: str) -> bool:
    return name in ROS_PARAMETERS or name.startswith(ROS_PARAMETER_PREFIXES)


def unknown_parameter_message(name: str, where: str = '') -> str:
    """'unknown parameter 'x' (in ...); did you mean 'y'?' with the closest known names."""
    import difflib
    close = difflib.get_close_matches(name, list(PARAMETERS_BY_NAME), n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
        f'; known: {", ".join(sorted(PARAMETERS_BY_NAME))}'
    return f'unknown parameter {name!r}{f" ({where})" if where else ""}{hint}'


def validate_all(values: dict[str, Any]) -> dict[str, Any]:
    """Validate a full set of parameter values (missing ones take defaults).

    Raises:
        ParameterError: unknown name or bad value; the message names the parameter.
    """
    unknown = sorted(n for n in set(values) - set(PARAMETERS_BY_NAME) if not is_ros_parameter(n))
    if unknown:
        raise ParameterError('; '.join(unknown_parameter_message(n) for n in unknown))
    return {p.name: p.validate(values.get(p.name, p.default)) for p in PARAMETERS}


def pipeline_config(values: dict[str, Any]) -> PipelineConfig:
    """Validated parameter values -> fer_ros.pipeline.PipelineConfig."""
    return PipelineConfig(
        model_path=values['model_path'],
        backend=values['backend'],
        backend_options=BackendOptions(
            intra_op_threads=values['onnxruntime_threads'], precision=values['tensorrt_precision'],
            engine_cache_dir=values['tensorrt_engine_cache_dir'], max_batch=values['tensorrt_max_batch'],
            int8_calib_dir=values['tensorrt_int8_calib_dir'], torch_device=values['torch_device']),
        detector=detector_config(values),
        tracker=TrackerConfig(iou_threshold=values['tracker_iou_threshold'], min_hits=values['tracker_min_hits'],
                              coast_s=values['tracker_coast_s']),
        smoothing=SmoothingConfig(method=values['smoothing'], tau_s=values['smoothing_tau_s'],
                                  window_s=values['smoothing_window_s']),
        commands_path=values['commands_file'],
        crop_margin=values['crop_margin'],
        crop_mode=values['crop_mode'],
        mirror_tta=values['mirror_tta'],
        background_scan=values['detector_background_scan'],
        attention=AttentionConfig(max_yaw_deg=values['attention_max_yaw_deg'],
                                  max_pitch_deg=values['attention_max_pitch_deg'],
                                  min_face_px=values['attention_min_face_px'],
                                  min_sharpness=values['attention_min_sharpness']),
        people=PeopleConfig(command_authority=values['command_authority'],
                            match_threshold=values['people_match_threshold'],
                            return_window_s=values['people_return_window_s'],
                            enrol_duration_s=values['enrol_duration_s']),
        identify=values['identify_people'],
        face_landmarks=values['head_pose_landmarks'],
        landmark_interval_s=values['landmark_interval_s'],
        embedder_model_path=values['face_embedder_model_path'],
        people_file=os.path.join(values['people_dir'] or default_people_dir(), STORE_FILE),
    )


def detector_config(values: dict[str, Any]) -> DetectorConfig:
    """The DetectorConfig part (also rebuilt when a detector threshold changes at run time)."""
    return DetectorConfig(kind=values['detector'], backend=values['detector_backend'],
                          model_path=values['detector_model_path'], max_side=values['detector_max_side'],
                          full_scan_s=values['detector_full_scan_s'],
                          full_scan_share=values['detector_full_scan_share'],
                          idle_scan_s=values['detector_idle_scan_s'],
                          min_face_size=values['min_face_size'], confidence_threshold=values['detection_threshold'],
                          max_faces=values['max_faces'])


def _limits_text(p: ParamDef) -> str:
    if p.choices:
        return f"one of: {', '.join(p.choices)}"
    if p.low is not None:
        return f'range {"(" if p.low_open else ""}{p.low:g}..{p.high:g}'
    return ''


def render_yaml() -> str:
    """config/fer.yaml text: every parameter with its default and description as a comment.
    (`python -m fer_ros.settings.params > config/fer.yaml`; a test checks the file matches the table.)"""
    lines = ['# fer_node / fer_lifecycle_node parameters (defaults). Generated from fer_ros/settings/params.py: edit',
             '# the table there, then `python -m fer_ros.settings.params > config/fer.yaml`. [runtime] = may change',
             '# while running (ros2 param set); the others are read at start (managed node: at configure).',
             "# Keyed '/**' so the file applies under any namespace and node name (a key naming the node,",
             "# `fer_node:`, would match only /fer_node: under a namespace ROS would silently ignore it).",
             "# Unknown keys are refused at start, naming the key and this file.",
             "/**:", '  ros__parameters:']
    for p in PARAMETERS:
        note = p.description + ('' if p.read_only else ' [runtime]')
        if _limits_text(p):
            note += f' ({_limits_text(p)})'
        lines += ['    # ' + text for text in textwrap.wrap(note, 96)]
        lines.append(f'    {p.name}: {json.dumps(p.default)}')
    return '\n'.join(lines) + '\n'


def render_markdown() -> str:
    """docs/integration.md's parameter table (`python -m fer_ros.settings.params --markdown`; a test checks it)."""
    rows = ['| parameter | default | runtime | meaning |', '|---|---|---|---|']
    for p in PARAMETERS:
        meaning = p.description + (f' ({_limits_text(p)})' if _limits_text(p) else '')
        rows.append(f"| `{p.name}` | `{json.dumps(p.default)}` | {'' if p.read_only else 'yes'} | "
                    f"{meaning.replace('|', '/')} |")
    return '\n'.join(rows) + '\n'


if __name__ == '__main__':
    print(render_markdown() if sys.argv[1:] == ['--markdown'] else render_yaml(), end='')
