"""One backend vocabulary for the classifier and the face detector: what runs where, what 'auto' picks and
says, what an explicit choice that cannot run says (issue 18).

On this machine (no GPU, CPU onnxruntime, no TensorRT) the real selection runs for real: 'auto' gives ONNX
Runtime on the CPU and logs that once; 'tensorrt', 'tensorrt-ep' and 'cuda' fail with one message naming
where the library comes from. The decisions for other machines are checked on ``Machine`` descriptions
(the probe's own dataclass), and auto's fallback on a machine description that claims a provider this
onnxruntime does not have (so the real session fails to start, as on a GPU host with missing libraries).
"""
from __future__ import annotations

import logging
import os

import pytest

from fer_ros import backends
from fer_ros.backends import BackendError, create_backend, create_face_detector, selection
from fer_ros.backends.selection import CPU_EP, CUDA_EP, TENSORRT_EP, Machine, auto_order, probe_machine
from fer_ros.core.backend_options import BACKENDS, DETECTOR_BACKENDS
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.settings import params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
CPU_ONLY = not probe_machine().gpu and not probe_machine().tensorrt
cpu_machine = pytest.mark.skipif(not CPU_ONLY, reason='this machine has a GPU or TensorRT (the GPU check covers it)')


def machine(**changes) -> Machine:
    base = dict(gpu=0, providers=(CPU_EP,), tensorrt='', tensorrt_error='TensorRT is not installed',
                cuda_python=False, libnvinfer10=False, torch=True)
    return Machine(**{**base, **changes})


@pytest.fixture(autouse=True)
def fresh_auto_log():
    selection._logged.clear()
    yield
    selection._logged.clear()


def test_one_vocabulary_for_both_models_documented_in_the_parameter_table():
    assert DETECTOR_BACKENDS == ('auto', 'cpu', 'cuda', 'tensorrt', 'tensorrt-ep')
    assert BACKENDS == DETECTOR_BACKENDS + ('torch',)
    table = params.render_markdown()
    for name, choices in (('backend', BACKENDS), ('detector_backend', DETECTOR_BACKENDS)):
        row = next(line for line in table.splitlines() if line.startswith(f'| `{name}` |'))
        assert f"one of: {', '.join(choices)}" in row
    backend_row = next(line for line in table.splitlines() if line.startswith('| `backend` |'))
    for word in ('native TensorRT engine', "ONNX Runtime's TensorRT", 'logged once', 'where its library comes from'):
        assert word in backend_row


@pytest.mark.parametrize('facts,order', [
    ({}, ['cpu']),
    ({'providers': (CUDA_EP, CPU_EP)}, ['cpu']),                                  # onnxruntime-gpu, no GPU
    ({'providers': (CUDA_EP, CPU_EP), 'gpu': 1}, ['cuda', 'cpu']),
    ({'providers': (TENSORRT_EP, CUDA_EP, CPU_EP), 'gpu': 1}, ['cuda', 'cpu']),   # EP compiled in, no libnvinfer
    ({'providers': (TENSORRT_EP, CUDA_EP, CPU_EP), 'gpu': 1, 'libnvinfer10': True}, ['tensorrt-ep', 'cuda', 'cpu']),
    ({'tensorrt': '10.3.0', 'gpu': 1}, ['cpu']),                                   # no cuda-python
    ({'tensorrt': '11.4.0.106', 'gpu': 1, 'cuda_python': True}, ['tensorrt', 'cpu']),
])
def test_auto_order_follows_what_the_machine_can_run(facts, order):
    assert auto_order(machine(**facts)) == order


def test_why_not_names_what_is_missing_and_where_it_comes_from():
    m = machine(providers=(TENSORRT_EP, CUDA_EP, CPU_EP), gpu=1)
    assert m.why_not('cpu') == '' and m.why_not('cuda') == ''
    text = m.why_not('tensorrt-ep')
    assert 'libnvinfer.so.10' in text and 'JetPack' in text and "NVIDIA's pip index" in text
    assert 'onnxruntime-gpu' in machine().why_not('cuda')
    assert 'requirements-trt.txt' in machine().why_not('tensorrt')
    assert machine(tensorrt='10.3.0', cuda_python=True).why_not('tensorrt').startswith('no NVIDIA GPU')
    assert machine().why_not('tensorrt', brief=True) == 'TensorRT is not installed'


@cpu_machine
@pytest.mark.parametrize('choice', ['tensorrt', 'tensorrt-ep', 'cuda'])
def test_an_explicit_gpu_choice_fails_here_with_one_clear_message(choice):
    with pytest.raises(BackendError) as info:
        create_backend(DEFAULT_ONNX, choice)
    text = str(info.value)
    assert '\n' not in text and text.startswith(f"{DEFAULT_ONNX}: backend '{choice}' cannot run here: ")
    assert 'comes from' in text and "Backend 'auto'" in text
    if choice == 'tensorrt':
        assert 'JetPack' in text and "NVIDIA's pip index" in text and 'requirements-trt.txt' in text
    with pytest.raises(BackendError, match=f"backend '{choice}' cannot run here"):
        create_face_detector(DetectorConfig(backend=choice))


@cpu_machine
def test_auto_runs_onnx_runtime_on_the_cpu_and_says_so_once(caplog):
    with caplog.at_level(logging.INFO, logger='fer_ros'):
        first = create_backend(DEFAULT_ONNX, 'auto')
        second = create_backend(DEFAULT_ONNX, 'auto')
        detector = create_face_detector(DetectorConfig(backend='auto'))
    assert first.choice == second.choice == 'cpu' and first.device == 'CPU'
    assert detector.network.runner.choice == 'cpu' and detector.device == 'CPU'
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith('backend auto:')]
    assert len(said) == 2, said                                        # once for the classifier, once for the detector
    assert said[0].startswith('backend auto: the classifier runs on cpu (not tensorrt: TensorRT is not installed')
    assert 'the face detector runs on cpu' in said[1]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]   # nothing to warn about


def test_auto_falls_back_with_one_warning_when_its_pick_does_not_start(monkeypatch, caplog):
    """A machine that claims the CUDA provider and a GPU; this onnxruntime has no CUDA provider, so the real
    session cannot start on it (as onnxruntime-gpu without its CUDA libraries) and auto goes on to the CPU."""
    claims = machine(providers=(CUDA_EP, CPU_EP), gpu=1)
    monkeypatch.setattr(backends, 'probe_machine', lambda: claims)
    monkeypatch.setattr(selection, 'probe_machine', lambda: claims)
    import onnxruntime as ort
    if CUDA_EP in ort.get_available_providers():
        pytest.skip('this onnxruntime has the CUDA provider')
    with caplog.at_level(logging.INFO, logger='fer_ros'):
        backend = create_backend(DEFAULT_ONNX, 'auto')
    assert backend.choice == 'cpu'
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'could not start on cuda' in warnings[0] and 'trying cpu' in warnings[0]
    assert any(r.getMessage().startswith('backend auto: the classifier runs on cpu') for r in caplog.records)


def test_the_parity_reference_and_the_default_onnxruntime_backend_run_on_the_cpu():
    """'cpu' means the CPU provider only, whatever onnxruntime build is installed (onnxruntime-gpu included)."""
    from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend, OnnxRuntimeRunner, open_session
    assert OnnxRuntimeBackend(DEFAULT_ONNX).providers == (CPU_EP,)
    detector = os.path.join(REPO, 'models', 'face_detector_libfacedetection.onnx')
    assert OnnxRuntimeRunner(detector).providers == (CPU_EP,)
    with pytest.raises(ValueError, match='must be one of'):
        open_session(DEFAULT_ONNX, 'tensorrt', 1)


@cpu_machine
def test_the_pipeline_says_where_both_models_run_and_why():
    """What the node logs when it configures (fer_ros/ros/runtime.py)."""
    from fer_ros.backends import create_pipeline
    from fer_ros.pipeline import PipelineConfig
    explicit = create_pipeline(PipelineConfig(backend='cpu', detector=DetectorConfig(backend='cpu')))
    assert explicit.backend_name == 'cpu'
    assert explicit.placement == ['classifier on cpu (CPU), face detector yunet on CPU']
    auto = create_pipeline(PipelineConfig())
    first, *why = auto.placement
    assert first == 'classifier on cpu (CPU), face detector yunet on CPU'
    assert [line.split(' (not ')[0] for line in why] == ['backend auto: the classifier runs on cpu',
                                                         'backend auto: the face detector runs on cpu']
