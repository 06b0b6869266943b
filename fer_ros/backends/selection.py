"""What this machine can run, and what ``auto`` picks: one backend vocabulary for the classifier and the detector.

The choices (``fer_ros.core.backend_options.BACKENDS``; the detector takes the same but ``torch``):

- ``cpu``: ONNX Runtime on the CPU execution provider (always available).
- ``cuda``: ONNX Runtime's CUDA execution provider (needs onnxruntime-gpu and a GPU; nodes it lacks run on
  the CPU inside the same session).
- ``tensorrt``: a native TensorRT engine built from the ONNX file and cached (the ``tensorrt`` Python
  module 10.3..11.x, cuda-python and a GPU); also runs prebuilt fer_ros ``.engine`` files.
- ``tensorrt-ep``: ONNX Runtime's TensorRT execution provider (onnxruntime-gpu with TensorRT 10's
  libraries: JetPack's onnxruntime-gpu on a Jetson), with its own engine cache; CUDA then CPU behind it.
- ``torch`` (classifier only): a PyTorch checkpoint on ``torch_device``.
- ``auto``: a checkpoint -> torch, an engine -> tensorrt, an ONNX file -> the first of tensorrt,
  tensorrt-ep, cuda, cpu that this machine can run; it logs once what it picked and why.

An explicit choice that cannot run fails with ONE message naming what is missing and where it comes from;
``auto`` falls back along its list with one warning when its pick fails to start.
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
from dataclasses import dataclass

from fer_ros.backends.base import BackendError

log = logging.getLogger(__name__)

CPU_EP = 'CPUExecutionProvider'
CUDA_EP = 'CUDAExecutionProvider'
TENSORRT_EP = 'TensorrtExecutionProvider'
AUTO_ORDER = ('tensorrt', 'tensorrt-ep', 'cuda', 'cpu')      # what auto tries for an ONNX file

TENSORRT_RANGE = ((10, 3), (12, 0))      # [lowest, highest): 10.3 = JetPack 6.1/6.2; 11.x = the newest on PyPI
TENSORRT_SOURCE = ("TensorRT comes from JetPack on a Jetson (apt: nvidia-jetpack, python3-libnvinfer) and, on an "
                   "x86_64 GPU host, from NVIDIA's pip index (`pip install -r requirements-trt.txt`: the tensorrt-cu12 "
                   "/ -cu13 packages on PyPI fetch the libraries from there at install time); fer_ros runs TensorRT "
                   "10.3 to 11.x with cuda-python for its buffers")
ORT_GPU_SOURCE = ("ONNX Runtime's CUDA and TensorRT providers are in onnxruntime-gpu, which comes from pip on x86_64 "
                  "(`pip install onnxruntime-gpu` in place of onnxruntime) and, on a Jetson, from NVIDIA's "
                  "onnxruntime-gpu wheel for its JetPack")


def check_tensorrt_version(version: str) -> None:
    """Raise BackendError unless ``version`` lies in TENSORRT_RANGE."""
    try:
        numbers = tuple(int(p) for p in str(version).split('.')[:2])
    except ValueError:
        numbers = (0, 0)
    (lo_major, lo_minor), (hi_major, _) = TENSORRT_RANGE
    if not TENSORRT_RANGE[0] <= numbers < TENSORRT_RANGE[1]:
        raise BackendError(f'TensorRT {version} is not supported: fer_ros runs TensorRT {lo_major}.{lo_minor} up to '
                           f'{hi_major - 1}.x; {TENSORRT_SOURCE}')


def import_tensorrt():
    """The ``tensorrt`` module, its version checked.

    Raises:
        BackendError: not importable (the message says where TensorRT comes from) or outside TENSORRT_RANGE.
    """
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError when libnvinfer is missing
        raise BackendError(f'TensorRT is not importable ({type(exc).__name__}: {exc}); {TENSORRT_SOURCE}') from exc
    check_tensorrt_version(trt.__version__)
    return trt


@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """CUDA devices the driver reports (libcuda through ctypes; no torch, no cuda-python); 0 without a driver."""
    for name in ('libcuda.so.1', 'libcuda.so', 'nvcuda.dll'):
        try:
            cuda = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0:
                return count.value
        except AttributeError:
            return 0
        return 0
    return 0


def _libnvinfer(major: int) -> bool:
    """Whether TensorRT ``major``'s core library loads (what ONNX Runtime's TensorRT provider links against)."""
    try:
        ctypes.CDLL(f'libnvinfer.so.{major}')
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class Machine:
    """What the runtimes of this machine can do (``probe_machine``).

    gpu: CUDA devices. providers: ONNX Runtime's execution providers. tensorrt: the importable TensorRT
    version or '' (then tensorrt_error says why). cuda_python: cuda-python importable. libnvinfer10: TensorRT
    10's library loads (ONNX Runtime's TensorRT provider, built against TensorRT 10, needs it).
    torch: torch importable.
    """

    gpu: int
    providers: tuple[str, ...]
    tensorrt: str
    tensorrt_error: str
    cuda_python: bool
    libnvinfer10: bool
    torch: bool

    def why_not(self, choice: str, brief: bool = False) -> str:
        """'' when ``choice`` can run here, else one sentence: what is missing and (unless ``brief``) where it
        comes from."""
        cause, source = self._missing(choice)
        return cause if brief or not source else f'{cause}; {source}'

    def _missing(self, choice: str) -> tuple[str, str]:
        no_gpu = ('no NVIDIA GPU is visible (the CUDA driver reports none)', '')
        if choice == 'cpu':
            return '', ''
        if choice == 'torch':
            return ('', '') if self.torch else ('torch is not installed', 'requirements-torch.txt installs it')
        if choice in ('cuda', 'tensorrt-ep'):
            provider = CUDA_EP if choice == 'cuda' else TENSORRT_EP
            if provider not in self.providers:
                return f'this onnxruntime has no {provider}', ORT_GPU_SOURCE
            if choice == 'tensorrt-ep' and not self.libnvinfer10:
                return ("ONNX Runtime's TensorRT provider needs TensorRT 10's libnvinfer.so.10, which does not load",
                        TENSORRT_SOURCE)
            return ('', '') if self.gpu else no_gpu
        if choice == 'tensorrt':
            if not self.tensorrt:
                return self.tensorrt_error, TENSORRT_SOURCE
            if not self.cuda_python:
                return ('cuda-python (its device buffers) is not installed',
                        '`pip install -r requirements-trt.txt` installs it (a Jetson: requirements-jetson-trt.txt)')
            return ('', '') if self.gpu else no_gpu
        raise ValueError(f'unknown backend {choice!r}')

    def usable(self, choice: str) -> bool:
        return not self.why_not(choice)

    def describe(self) -> str:
        trt = f'TensorRT {self.tensorrt}' if self.tensorrt else 'no TensorRT'
        providers = ', '.join(p.replace('ExecutionProvider', '') for p in self.providers)
        return (f"{self.gpu} GPU(s); onnxruntime providers {providers}; {trt}; "
                f"cuda-python {'yes' if self.cuda_python else 'no'}; "
                f"libnvinfer.so.10 {'loads' if self.libnvinfer10 else 'absent'}")


@functools.lru_cache(maxsize=1)
def probe_machine() -> Machine:
    """Probe once per process (imports tensorrt when it is installed: that is what decides)."""
    import onnxruntime as ort

    version, error = '', 'TensorRT is not installed (no `tensorrt` Python module)'
    if importlib.util.find_spec('tensorrt') is not None:
        try:
            version = import_tensorrt().__version__
        except BackendError as exc:
            error = str(exc).split('; ')[0]
    return Machine(gpu=gpu_count(), providers=tuple(ort.get_available_providers()), tensorrt=version,
                   tensorrt_error=error, cuda_python=importlib.util.find_spec('cuda') is not None,
                   libnvinfer10=_libnvinfer(10) or version.startswith('10.'),
                   torch=importlib.util.find_spec('torch') is not None)


def auto_order(machine: Machine) -> list[str]:
    """The choices ``auto`` tries for an ONNX file on ``machine``, best first (always ends with 'cpu')."""
    return [c for c in AUTO_ORDER if machine.usable(c)]


_logged: set[tuple[str, str]] = set()


def auto_choice_text(role: str, choice: str, machine: Machine) -> str:
    """'backend auto: the <role> runs on <choice> (not <better>: <why>; ...)'."""
    better = AUTO_ORDER[:AUTO_ORDER.index(choice)] if choice in AUTO_ORDER else ()
    skipped = [f'{c}: {machine.why_not(c, brief=True)}' for c in better if machine.why_not(c)]
    return f"backend auto: the {role} runs on {choice}" + (f" (not {'; not '.join(skipped)})" if skipped else '')


def log_auto_choice(role: str, choice: str, machine: Machine) -> str:
    """Log once per role and choice what ``auto`` picked and why the better ones were not taken; returns it."""
    text = auto_choice_text(role, choice, machine)
    if (role, choice) not in _logged:
        _logged.add((role, choice))
        log.info('%s', text)
    return text
