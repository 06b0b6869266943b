"""Which inference backend runs the classifier, and its options: the one definition of these choices.

``fer_ros.backends`` implements them, the PipelineConfig carries them, and the node's parameters and
the CLIs are derived from them. Kept apart from the pipeline so the backends import only this and the
model spec from core.
"""
from __future__ import annotations

from dataclasses import dataclass

from fer_ros.core.validate import check_fields, setting

# One vocabulary for the classifier and the face detector (which takes all but 'torch'); what each means and
# what 'auto' picks: fer_ros.backends.selection. 'cpu' / 'cuda' / 'tensorrt-ep' are ONNX Runtime with that
# execution provider; 'tensorrt' is a native TensorRT engine.
DETECTOR_BACKENDS: tuple[str, ...] = ('auto', 'cpu', 'cuda', 'tensorrt', 'tensorrt-ep')
BACKENDS: tuple[str, ...] = DETECTOR_BACKENDS + ('torch',)
ONNXRUNTIME_BACKENDS: tuple[str, ...] = ('cpu', 'cuda', 'tensorrt-ep')
PRECISIONS: tuple[str, ...] = ('fp32', 'fp16', 'int8')
# model files by suffix (lower case): which backend can run them
ENGINE_SUFFIXES: tuple[str, ...] = ('.engine', '.plan', '.trt')      # serialized TensorRT engines
TORCH_SUFFIXES: tuple[str, ...] = ('.pt', '.pth', '.ckpt')           # fer_ros checkpoints


@dataclass(frozen=True)
class BackendOptions:
    """Options of the backends; each reads its own and ignores the others' (the face detector reads
    intra_op_threads' sibling DetectorConfig.num_threads instead, precision and engine_cache_dir).

    intra_op_threads: ONNX Runtime threads per inference call, 1..64 (the detector runs before, never
        beside it).
    precision: TensorRT precision ('tensorrt' and 'tensorrt-ep'): 'fp32' | 'fp16' | 'int8'. fp16: on the
        native backend an fp16 copy of the ONNX built as a strongly typed network (TensorRT 10 and 11),
        the execution provider's FP16 mode; int8 (classifier, native backend, TensorRT 10 only: implicit
        INT8 calibration on int8_calib_dir; TensorRT 11 removed it); the face detector runs int8 as fp16.
        A prebuilt .engine keeps its own.
    engine_cache_dir: folder of TensorRT engines of both models and of the execution provider's caches
        (created when missing); '' = $FER_ROS_ENGINE_CACHE, else $XDG_CACHE_HOME/fer_ros/engines
        (~/.cache/fer_ros/engines).
    max_batch: largest batch of an engine built from ONNX, 1..1024; bigger batches run in chunks.
    int8_calib_dir: folder of face-crop images for INT8 calibration ('' = none).
    torch_device: torch device of the torch backend ('cpu', 'cuda', 'cuda:1').
    torch_threads: torch CPU threads, 0..64 (0 = leave torch's setting).
    """

    intra_op_threads: int = setting(1, low=1, high=64)
    precision: str = setting('fp16', choices=PRECISIONS)
    engine_cache_dir: str = ''
    max_batch: int = setting(32, low=1, high=1024)
    int8_calib_dir: str = ''
    torch_device: str = 'cpu'
    torch_threads: int = setting(0, low=0, high=64)

    def __post_init__(self) -> None:
        check_fields(self)
