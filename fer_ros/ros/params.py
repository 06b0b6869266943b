"""The node's parameters: one table that declares, documents, validates and maps them.

The table is the single source for: `declare_parameter` calls (description, range, read-only flag),
validation at start and at run time, config/fer.yaml (a test checks the file mirrors the table) and
the launch file (a test checks every parameter it sets exists here). No rclpy import at module
level, so the table can be checked without ROS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fer_ros.core.detection import DETECTOR_BACKENDS, DETECTOR_KINDS
from fer_ros.core.preprocess import CROP_MODES, MIRROR_TTA_CHOICES
from fer_ros.core.validate import range_problem

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

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to the default's type, or raise ParameterError naming the parameter."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ParameterError(f'parameter {self.name!r}: expected {kind.__name__}, got {value!r}')
        if self.choices and value not in self.choices:
            raise ParameterError(f'parameter {self.name!r}: {value!r} is not one of {list(self.choices)}')
        problem = range_problem(value, self.low, self.high, integer=kind is int) if self.low is not None else None
        if problem:
            raise ParameterError(f'parameter {self.name!r}: {problem}')
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
    ParamDef('max_rate_hz', 0.0, 'process at most this many frames per second (0 = as fast as possible)',
             low=0.0, high=1000.0, read_only=False),
    ParamDef('max_image_pixels', 40_000_000, 'frames with more pixels than this are rejected (reported in '
             'diagnostics) instead of processed', low=1, high=500_000_000, read_only=False),
    # --- model ---
    ParamDef('model_path', '', "ONNX model (or TensorRT .engine / PyTorch checkpoint for those backends); "
             "'' = the default FER2013 mini-Xception from `make setup`"),
    ParamDef('backend', 'auto', "inference backend; 'auto' = TensorRT when it imports and a GPU is present, "
             "else ONNX Runtime", choices=('auto', 'onnxruntime', 'tensorrt', 'torch')),
    ParamDef('crop_margin', 0.2, 'margin added around each face box before the square crop (fraction of size)',
             low=0.0, high=1.0),
    ParamDef('crop_mode', 'square', "'aligned': rotate each face so the eyes are level and frame it by the "
             "detector's five landmarks (faces without landmarks, e.g. from haar, keep the square crop); "
             "'square': the square around the face box", choices=CROP_MODES),
    ParamDef('mirror_tta', 'model', "classify each face together with its mirror image in the same batch and "
             "average the two: 'model' = the model file's default, 'on', 'off'", choices=MIRROR_TTA_CHOICES),
    ParamDef('neutral_calibration_s', 3.0, 'seconds of frames ~/calibrate_neutral collects when a request '
             'gives no duration', low=0.2, high=60.0, read_only=False),
    # --- face detection ---
    ParamDef('detector', 'yunet', "face detector: 'yunet' (libfacedetection CNN as ONNX, on detector_backend), "
             "'yuface' (the same CNN, its x86_64 C++ binding) or 'haar' (OpenCV)", choices=DETECTOR_KINDS),
    ParamDef('detector_backend', 'auto', "where 'yunet' runs: 'auto' = ONNX Runtime's TensorRT/CUDA provider when "
             "present with a GPU, else CPU; 'onnxruntime' = CPU; 'tensorrt' = TensorRT provider + engine cache",
             choices=DETECTOR_BACKENDS),
    ParamDef('detector_model_path', '', "the 'yunet' ONNX model; '' = the default from `make setup`"),
    ParamDef('detector_max_side', 640, 'detection runs on a copy downscaled to this longest side (pixels)',
             low=64, high=4096, read_only=False),
    ParamDef('detector_full_scan_period', 5, 'full-frame face detection every N frames; in between only '
             'around the tracked faces (fast). 1 = every frame. New faces are found up to N-1 frames late',
             low=1, high=1000, read_only=False),
    ParamDef('min_face_size', 24, 'smallest face side to report, in source-image pixels',
             low=1, high=4096, read_only=False),
    ParamDef('detection_threshold', 0.6, 'minimum detector confidence (0..1)', low=0.0, high=1.0, read_only=False),
    ParamDef('max_faces', 10, 'at most this many faces (highest scores) per frame', low=1, high=64, read_only=False),
    # --- tracking and smoothing ---
    ParamDef('tracker_iou_threshold', 0.3, 'IoU needed to continue a track', low=0.0, high=1.0),
    ParamDef('tracker_min_hits', 2, 'a face is published after this many consecutive detections', low=1, high=100),
    ParamDef('tracker_max_misses', 5, 'a track is dropped after this many frames without a detection',
             low=0, high=1000),
    ParamDef('smoothing', 'ema', "temporal smoothing of probabilities: 'ema', 'window' or 'none'",
             choices=('ema', 'window', 'none')),
    ParamDef('smoothing_alpha', 0.4, 'EMA weight of the newest frame (smoothing = ema)', low=0.01, high=1.0),
    ParamDef('smoothing_window', 5, 'frames averaged (smoothing = window)', low=1, high=100),
    # --- commands ---
    ParamDef('commands_file', '', "expression-to-command mapping YAML; '' = the packaged config/commands.yaml"),
    ParamDef('command_tick_hz', 10.0, 'rate of the timer that emits HOLD and heartbeat commands when '
             'frames stop arriving', low=0.1, high=100.0),
    # --- outputs ---
    ParamDef('publish_debug_image', True, 'publish `debug_image` (annotated frames); rendered only while '
             'someone subscribes', read_only=False),
    ParamDef('diagnostics_period_s', 1.0, 'period of /diagnostics messages (seconds)', low=0.1, high=60.0),
)
PARAMETERS_BY_NAME: dict[str, ParamDef] = {p.name: p for p in PARAMETERS}


def validate_all(values: dict[str, Any]) -> dict[str, Any]:
    """Validate a full set of parameter values (missing ones take defaults).

    Raises:
        ParameterError: unknown name or bad value; the message names the parameter.
    """
    unknown = set(values) - set(PARAMETERS_BY_NAME)
    if unknown:
        raise ParameterError(f'unknown parameter(s) {sorted(unknown)}; known: {sorted(PARAMETERS_BY_NAME)}')
    return {p.name: p.validate(values.get(p.name, p.default)) for p in PARAMETERS}


def pipeline_config(values: dict[str, Any]):
    """Validated parameter values -> fer_ros.core.pipeline.PipelineConfig."""
    from fer_ros.core.detection import DetectorConfig
    from fer_ros.core.pipeline import PipelineConfig
    from fer_ros.core.smoothing import SmoothingConfig
    from fer_ros.core.tracking import TrackerConfig

    return PipelineConfig(
        model_path=values['model_path'],
        backend=values['backend'],
        detector=detector_config(values, DetectorConfig),
        tracker=TrackerConfig(iou_threshold=values['tracker_iou_threshold'], min_hits=values['tracker_min_hits'],
                              max_misses=values['tracker_max_misses']),
        smoothing=SmoothingConfig(method=values['smoothing'], alpha=values['smoothing_alpha'],
                                  window=values['smoothing_window']),
        commands_path=values['commands_file'],
        crop_margin=values['crop_margin'],
        crop_mode=values['crop_mode'],
        mirror_tta=values['mirror_tta'],
    )


def detector_config(values: dict[str, Any], cls=None):
    """The DetectorConfig part (also rebuilt when a detector threshold changes at run time)."""
    if cls is None:
        from fer_ros.core.detection import DetectorConfig as cls
    return cls(kind=values['detector'], backend=values['detector_backend'], model_path=values['detector_model_path'],
               max_side=values['detector_max_side'],
               full_scan_period=values['detector_full_scan_period'],
               min_face_size=values['min_face_size'], confidence_threshold=values['detection_threshold'],
               max_faces=values['max_faces'])


def declare(node) -> dict[str, Any]:
    """Declare every parameter on an rclpy node (with description, range, read-only) and return the
    validated values (overrides from --params-file / -p included).

    Raises:
        ParameterError: a value given at start is invalid.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    values = {}
    for p in PARAMETERS:
        desc = p.description
        if p.choices:
            desc += f" (one of: {', '.join(p.choices)})"
        descriptor = ParameterDescriptor(description=desc, read_only=p.read_only)
        if p.low is not None and isinstance(p.default, float):
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(p.low), to_value=float(p.high),
                                                                  step=0.0)]
        elif p.low is not None and isinstance(p.default, int) and not isinstance(p.default, bool):
            descriptor.integer_range = [IntegerRange(from_value=int(p.low), to_value=int(p.high), step=0)]
        try:
            value = node.declare_parameter(p.name, p.default, descriptor).value
        except Exception as exc:  # rclpy raises InvalidParameterTypeException & co.
            raise ParameterError(f'parameter {p.name!r}: {exc}') from exc
        values[p.name] = p.validate(value)
    return values


def render_yaml() -> str:
    """config/fer.yaml text: every parameter with its default and description as a comment.
    (`python -m fer_ros.ros.params > config/fer.yaml`; a test checks the file matches the table.)"""
    import json
    import textwrap

    lines = ['# fer_node parameters (defaults). Generated from fer_ros/ros/params.py: edit the table there,',
             '# then `python -m fer_ros.ros.params > config/fer.yaml`. [runtime] = may change while running',
             '# (ros2 param set); the others are read at start.',
             f'{NODE_NAME}:', '  ros__parameters:']
    for p in PARAMETERS:
        note = p.description + ('' if p.read_only else ' [runtime]')
        if p.choices:
            note += f" (one of: {', '.join(p.choices)})"
        elif p.low is not None:
            note += f' (range {p.low}..{p.high})'
        lines += ['    # ' + text for text in textwrap.wrap(note, 96)]
        lines.append(f'    {p.name}: {json.dumps(p.default)}')
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    print(render_yaml(), end='')
