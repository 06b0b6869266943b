"""The GPU check (`make gpu-check` / scripts/gpu_check.sh): everything of fer_ros's GPU path that a machine can
run, one line per check, PASS / FAIL / SKIP with the facts and the reason. Exit status 1 when a check FAILs.

Made for a bare x86-64 machine with an NVIDIA GPU, CUDA 13, PyTorch (cu130), cuda-bindings 13, CuPy, onnx and a
CPU onnxruntime but no TensorRT, no internet and no `make setup` (bring `models/` along: ~2 MB), and for a
Jetson or desktop where TensorRT is installed and `make setup` ran. On a machine without a GPU every GPU check
SKIPs with its reason and the rest passes (CI runs it so: test/test_gpu_check.py).

Checks, in order (the first ones need only numpy, onnxruntime and the repository):
  environment        versions, ONNX Runtime providers, GPU, TensorRT importable or not
  backend_selection  'auto' picks and says so once; 'tensorrt' / 'cuda' / 'tensorrt-ep' where they cannot run
                     fail with one message naming where the library comes from
  cuda_buffers       fer_ros's CUDA helper (cuda-bindings): device buffers, pinned host buffers, the stream
                     handle; every byte cross-read AND cross-written with CuPy; the same from a worker thread
                     (the node infers on one); the out-of-memory message; DeprecationWarnings reported
  torch_cuda_vs_cpu  the default classifier on real face crops (the repository's photos through the real
                     detector): torch on CUDA against ONNX Runtime on the CPU (max |difference| printed)
  amp_training       Light-NTWRN (the smoke configuration: synthetic faces, no files) trained on CUDA with
                     fp16 autocast + GradScaler through training.train for one epoch
  tensorrt_tests     where `import tensorrt` works and a GPU is present: test/test_tensorrt.py, the GPU parity
                     tests (test_backends / detector tests on TensorRT) and `make bench` on TensorRT
Budget: ~2-4 minutes on a GPU machine (the TensorRT part adds engine builds: ~5 minutes); every child process
has a time limit.

    python scripts/gpu_check.py [--rehearse-on-cpu]
    python scripts/gpu_check.py --prepare        # where `make setup` ran: models/gpu_check_faces.npy

--prepare stores the real face crops torch_cuda_vs_cpu uses, for a GPU host without OpenCV (bring models/
along: ~2 MB).

--rehearse-on-cpu runs torch_cuda_vs_cpu and amp_training on the CPU (AMP off) instead of skipping them, so
their code is exercised where no GPU is (test/test_gpu_check.py does, in CI).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
RESULTS: list[str] = []
DEFAULT_ONNX = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
DEFAULT_PT = os.path.join(REPO, 'models', 'mini_xception_fer2013.pt')
FACES = os.path.join(REPO, 'models', 'gpu_check_faces.npy')     # `--prepare`: face crops for a host without OpenCV
REHEARSE = '--rehearse-on-cpu' in sys.argv[1:]


class Skip(Exception):
    """The check cannot run on this machine; the message says why."""


def check(fn) -> None:
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            info, status = fn(), 'PASS'
        except Skip as exc:
            info, status = str(exc), 'SKIP'
        except Exception as exc:  # report and go on with the next check
            info, status = f'{type(exc).__name__}: {exc}', 'FAIL'
            traceback.print_exc()
    warned = sorted({f'{w.category.__name__}: {str(w.message)[:160]}' for w in caught
                     if issubclass(w.category, (DeprecationWarning, FutureWarning))})
    RESULTS.append(status)
    print(f'{status} {fn.__name__} ({time.monotonic() - start:.1f} s): {info}', flush=True)
    for line in warned:
        print(f'     warning: {line}', flush=True)


def _version(module: str) -> str:
    try:
        mod = __import__(module, fromlist=['_'])
        return str(getattr(mod, '__version__', 'present'))
    except Exception as exc:
        return f'missing ({type(exc).__name__})'


def environment() -> dict:
    import numpy as np
    import onnxruntime as ort

    from fer_ros.backends import gpu_available
    from fer_ros.backends.selection import probe_machine
    facts = {'python': sys.version.split()[0], 'numpy': np.__version__, 'onnxruntime': ort.__version__,
             'providers': ort.get_available_providers(), 'gpu': gpu_available()}
    for module in ('cuda.bindings', 'cupy', 'torch', 'tensorrt', 'cv2'):
        facts[module] = _version(module)
    facts['machine'] = probe_machine().describe()
    return facts


def backend_selection() -> dict:
    from fer_ros.backends import BackendError, create_backend
    from fer_ros.backends.selection import probe_machine

    if not os.path.isfile(DEFAULT_ONNX):
        raise Skip(f'{DEFAULT_ONNX} missing: run `make setup` (or bring models/ along)')
    machine = probe_machine()
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    handler = Keep(level=logging.INFO)
    logging.getLogger('fer_ros').addHandler(handler)
    logging.getLogger('fer_ros').setLevel(logging.INFO)
    try:
        auto = create_backend(DEFAULT_ONNX, 'auto')
        picked = [r for r in records if 'backend auto' in r]
        assert len(picked) == 1, f'auto logged {len(picked)} choice lines: {picked}'
        facts = {'auto': f'{auto.name} on {auto.device}', 'auto_log': picked[0]}
        auto.close()
        for choice in ('tensorrt', 'tensorrt-ep', 'cuda'):
            if machine.usable(choice):
                facts[choice] = 'usable here'
                continue
            try:
                create_backend(DEFAULT_ONNX, choice).close()
                raise AssertionError(f"backend {choice!r} loaded although the machine probe says it cannot run")
            except BackendError as exc:
                text = str(exc)
                assert '\n' not in text and 'comes from' in text, text
                facts[choice] = text[:200]
        return facts
    finally:
        logging.getLogger('fer_ros').removeHandler(handler)


def cuda_buffers() -> dict:
    import numpy as np

    from fer_ros.backends.base import BackendError
    from fer_ros.backends.cuda_runtime import open_cuda
    try:
        cuda = open_cuda()
    except BackendError as exc:
        raise Skip(f'no CUDA here: {exc}') from None
    try:
        import cupy as cp
    except ImportError:
        cp = None
    facts = {'device': cuda.device_name(), 'stream_handle_is_int': isinstance(cuda.handle, int)}
    rng = np.random.default_rng(0)

    def round_trip(dtype, shape) -> str:
        ptr, host = cuda.host_alloc(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        device = cuda.malloc(host.nbytes)
        try:
            pinned = host.view(dtype).reshape(shape)
            pinned[...] = rng.standard_normal(shape).astype(dtype)
            cuda.htod(device, pinned)
            back = np.empty_like(pinned)
            cuda.dtoh(back, device)
            cuda.synchronize()
            assert np.array_equal(back, pinned), f'{np.dtype(dtype)}: device copy differs'
            if cp is None:
                return 'cupy missing'
            cuda_mem = cp.cuda.UnownedMemory(device, host.nbytes, owner=None)
            view = cp.ndarray(shape, dtype, cp.cuda.MemoryPointer(cuda_mem, 0))
            assert np.array_equal(view.get(), pinned), f'{np.dtype(dtype)}: CuPy reads other bytes'
            view *= 2                                   # CuPy writes, fer_ros's helper reads
            cp.cuda.runtime.deviceSynchronize()
            cuda.dtoh(back, device)
            cuda.synchronize()
            assert np.array_equal(back, pinned * 2), f'{np.dtype(dtype)}: fer_ros reads other bytes than CuPy wrote'
            return 'equal both ways'
        finally:
            cuda.free(device)
            cuda.free_host(ptr)

    for dtype in (np.float32, np.float16):              # the I/O types fer_ros's engines use
        facts[f'cupy_{np.dtype(dtype).name}'] = round_trip(dtype, (8, 1, 64, 64))
    box: dict = {}

    def worker() -> None:
        try:
            box['worker'] = round_trip(np.float32, (4, 3, 48, 48))
        except Exception as exc:
            box['worker'] = f'{type(exc).__name__}: {exc}'
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(60)
    assert box.get('worker') in ('equal both ways', 'cupy missing'), f'worker thread: {box}'
    facts['worker_thread'] = box['worker']
    try:
        cuda.malloc(1 << 50)                            # 1 PiB: the error path names the call
        raise AssertionError('a 1 PiB cudaMalloc did not fail')
    except BackendError as exc:
        facts['oom_message'] = str(exc)
    cuda.close()
    cuda.close()                                        # idempotent
    return facts


def _real_faces():
    """Face crops of the default model from the repository's photos (real detector), float32[N, C, H, W];
    where OpenCV is missing, the ones ``--prepare`` stored."""
    import numpy as np
    try:
        return _detect_faces()
    except ImportError as exc:
        if os.path.isfile(FACES):
            return np.load(FACES)
        raise Skip(f'{exc.name} is not installed here and {FACES} was not prepared: run `scripts/gpu_check.sh '
                   '--prepare` where `make setup` ran and bring models/ along') from None


def _detect_faces():
    import numpy as np

    from fer_ros.backends import create_face_detector
    from fer_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from fer_ros.perception.detectors import DetectorConfig
    from fer_ros.perception.preprocess import crop_faces
    from fer_ros.sample_frames import sample_frame
    spec = OnnxRuntimeBackend(DEFAULT_ONNX, backend='cpu').spec
    detector = create_face_detector(DetectorConfig(kind='yunet', backend='cpu'))
    crops = []
    for faces, seed in ((1, 0), (3, 1), (5, 2)):
        frame, _ = sample_frame(faces, seed=seed)
        boxes = [d.box for d in detector.detect(frame)]
        if boxes:
            crops.append(crop_faces(frame, boxes, spec))
    if not crops:
        raise AssertionError('the detector found no face in the sample frames')
    return np.concatenate(crops)


def _torch_device() -> str:
    """'cuda', or 'cpu' when rehearsing on a machine without one; Skip otherwise."""
    try:
        import torch
    except ImportError:
        raise Skip('torch is not installed') from None
    if torch.cuda.is_available():
        return 'cuda'
    if REHEARSE:
        return 'cpu'
    raise Skip('torch sees no CUDA device')


def torch_cuda_vs_cpu() -> dict:
    import numpy as np
    device = _torch_device()
    for path in (DEFAULT_ONNX, DEFAULT_PT):
        if not os.path.isfile(path):
            raise Skip(f'{path} missing: run `make setup` (or bring models/ along)')
    from fer_ros.backends import create_backend

    batch = _real_faces()
    gpu = create_backend(DEFAULT_PT, 'torch', torch_device=device)
    cpu = create_backend(DEFAULT_ONNX, 'cpu')
    p_gpu, p_cpu = gpu.infer(batch), cpu.infer(batch)
    diff = float(np.abs(p_gpu - p_cpu).max())
    same = float(np.mean(p_gpu.argmax(1) == p_cpu.argmax(1)))
    assert p_gpu.shape == p_cpu.shape == (len(batch), len(cpu.labels)), (p_gpu.shape, p_cpu.shape)
    assert diff < 5e-3 and same == 1.0, f'max |torch cuda - onnxruntime cpu| = {diff}, same class {same:.0%}'
    return {'faces': len(batch), 'torch_device': gpu.device, 'max_abs_diff': diff, 'same_class': same}


def amp_training() -> dict:
    """training.train on the smoke configuration; where its imports are missing on a bare host (OpenCV,
    matplotlib...), Light-NTWRN's own steps with the same AMP machinery (autocast fp16 + GradScaler)."""
    device = _torch_device()
    try:
        from training.config import load_config
        from training.train import run
    except ImportError as exc:
        return _amp_steps(device, f'training.train needs {exc.name}, not installed here')

    amp = 'fp16' if device == 'cuda' else 'off'
    per_class = 60 if device == 'cuda' else 10          # the rehearsal only needs the code path
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='fer_gpu_check_train_') as out:
        cfg = load_config(os.path.join(REPO, 'training', 'configs', 'smoke.yaml'),
                          [f'train.device={device}', f'train.amp={amp}', 'train.epochs=1', f'train.output={out}',
                           f'data.synthetic_per_class={per_class}'])
        results = run(cfg)        # raises FloatingPointError when the (scaled) loss is not finite
    return {'device': device, 'amp': amp, 'seconds': round(time.monotonic() - start, 1), 'model': results['model'],
            'params': results['params'], 'test_accuracy_after_1_epoch': round(results['final']['accuracy'], 3)}


def _amp_steps(device: str, why: str) -> dict:
    import torch
    import torch.nn.functional as F

    from fer_ros.models import create_model
    torch.manual_seed(0)
    model = create_model('light_ntwrn', num_classes=7, in_channels=3, stem_channels=8, widths=[16, 32, 64],
                         depths=[1, 1, 1], ds_multiplier=[1, 1, 2]).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    amp = device == 'cuda'
    scaler = torch.amp.GradScaler('cuda', enabled=amp)
    images = torch.randn(32, 3, 48, 48, device=device)
    labels = torch.arange(32, device=device) % 7
    losses = []
    for _ in range(30):                                    # learn a fixed batch: the loss must fall
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=amp):
            loss = F.cross_entropy(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    assert all(map(lambda v: v == v and abs(v) != float('inf'), losses)), losses
    assert losses[-1] < losses[0], f'loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}'
    return {'device': device, 'amp': 'fp16' if amp else 'off', 'steps': len(losses), 'loss_first_last':
            (round(losses[0], 3), round(losses[-1], 3)), 'note': why}


def _run(cmd: list[str], timeout: int) -> str:
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    if done.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} exited {done.returncode}: {" | ".join(tail)}')
    return ' | '.join(tail)


def tensorrt_tests() -> dict:
    from fer_ros.backends.selection import probe_machine
    machine = probe_machine()
    if not machine.usable('tensorrt'):
        raise Skip(f'TensorRT cannot run here ({machine.why_not("tensorrt")}): test/test_tensorrt.py, the GPU parity '
                   'tests and `make bench` on TensorRT run where it can (a Jetson, a desktop with TensorRT)')
    python = sys.executable
    facts = {'test_tensorrt': _run([python, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider',
                                    'test/test_tensorrt.py'], 900),
             'gpu_parity': _run([python, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', '-k',
                                 'tensorrt or cuda or gpu', 'test/test_backends.py', 'test/test_cnn_detection.py'],
                                900)}
    # `make bench` without the fer-library peer (its venv downloads TensorFlow): every backend this machine runs
    facts['bench'] = _run([python, '-m', 'benchmarks.perception', '--no-peer', '--json', 'bench/bench_gpu.json'], 1200)
    return facts


def prepare() -> int:
    import numpy as np
    faces = _detect_faces()
    np.save(FACES, faces)
    print(f'{FACES}: {faces.shape[0]} real face crops {faces.shape[1:]} ({os.path.getsize(FACES) // 1024} KB)')
    return 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    if '--prepare' in sys.argv[1:]:
        return prepare()
    for step in (environment, backend_selection, cuda_buffers, torch_cuda_vs_cpu, amp_training, tensorrt_tests):
        check(step)
    print(f"{RESULTS.count('PASS')} passed, {RESULTS.count('FAIL')} failed, {RESULTS.count('SKIP')} skipped")
    return 1 if 'FAIL' in RESULTS else 0


if __name__ == '__main__':
    sys.exit(main())
