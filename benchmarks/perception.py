"""Perception benchmark (`make bench`): latency per stage and per classifier, the `fer` library as the peer.

    python -m benchmarks.perception [--json bench/bench.json] [--frames 200] [--model PATH ...] [--no-peer]

A development script (not installed with the package; run from the checkout).

1. Pipeline (default model, ONNX Runtime, the 'yunet' detector unless named) on 640x480 clips with 1
   and 5 real faces (fer_ros.sample_frames, the camera panning slowly so the faces move a few
   pixels per frame): median / p90 / p99 of detect, preprocess, infer, track, total and of
   detect + preprocess + infer (targets: <= 10 ms with one face, <= 40 ms with five), for the detector
   profiles in PROFILES: 'roi' (the default: max_side 640, a full-frame scan on the frame it is due
   on, at least every full_scan_s of stamps, ROI detection around the tracks in between; also reported
   per mode; the node scans in the background instead: `make bench-node`), 'full'
   (full_scan_s 0: the whole frame at 640 on every frame, i.e. what fer-infer does per image),
   'fast' (the whole frame at 320 on every frame) and 'yuface_full' (the yuface binding, whole frame
   at 640: the previous detector). Then each detector (yunet, yuface, haar) alone at max_side
   640/480/400/320: time, and recall of single faces 20..64 px tall (what a smaller detector input
   costs), and the same recall in ROI mode (the face searched around its box of the previous frame,
   the face having moved by a quarter of its size).
2. Classifier alone: batches of 1, 8 and 32 real face crops for every model (the default model, any
   other classifier .onnx in models/, --model files) on every backend available here (onnxruntime; tensorrt
   when it imports and a GPU is present; torch when torch imports and a checkpoint .pt sits beside
   the .onnx).
3. The peer: the same frames through the `fer` PyPI library's own pipeline (its Haar cascade +
   mini-Xception, TFLite as its default and its Keras model), in a separate venv
   (bench/.venv-peer, made by benchmarks/setup_peer.sh from the pins in
   benchmarks/requirements-peer.txt; `make bench` runs it first); the product's .venv never gets
   TensorFlow. The peer (benchmarks/fer_peer_server.py) runs as a server process, and our pipeline
   profiles and the peer take turns in chunks of 10 frames, so a change in the machine's background
   load hits both alike. The frame-rate ratio product / fastest peer variant is printed (target >= 5,
   >= 10 for the 'fast' profile).

Every figure is wall-clock per call on this machine, after a warm-up; nothing else should run.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from fer_ros.util.stats import summary as stats_summary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # benchmarks/ sits in the checkout
PEER_VENV = os.path.join(REPO, 'bench', '.venv-peer')      # made by benchmarks/setup_peer.sh (make bench)
PEER_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fer_peer_server.py')
TARGETS_MS = {'1_face': 10.0, '5_faces': 40.0}
TARGET_RATIO = {'fast': 10.0}          # per profile; others TARGET_RATIO_DEFAULT
TARGET_RATIO_DEFAULT = 5.0
FRAME_SIZE = (640, 480)
SEEDS = (0, 1, 2, 3)          # distinct frames per scenario, cycled
# DetectorConfig overrides per pipeline profile: the default (ROI-assisted), a full-frame scan at 640 on
# every frame (per image, as fer-infer), a fast one (full frame at 320: finds faces >= ~40 px) and the
# previous detector (the yuface binding) per image
PROFILES = {'roi': {}, 'full': {'full_scan_s': 0.0}, 'fast': {'max_side': 320, 'full_scan_s': 0.0},
            'yuface_full': {'kind': 'yuface', 'full_scan_s': 0.0}}
DETECTOR_KINDS_BENCHED = ('yunet', 'yuface', 'haar')
# the camera pans back and forth by this many pixels per frame (faces move; ROI mode has to follow)
PAN_STEP_PX = 3
CLIP_FRAMES = 16



def summary(values) -> dict[str, float]:
    """median / p90 / p99 in ms, rounded for the report."""
    stats = stats_summary(values)
    return {k: round(stats[k], 3) for k in ('median', 'p90', 'p99')}


def progress(iterable, desc: str, total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, file=sys.stderr, disable=None)  # off when not a tty


def scenario_frames(num_faces: int):
    """Distinct still frames (one per seed) for the detector-alone timing."""
    from fer_ros.sample_frames import sample_frame

    return [sample_frame(num_faces, FRAME_SIZE, seed)[0] for seed in SEEDS]


def scenario_clip(num_faces: int):
    """A looping clip of CLIP_FRAMES uint8[480, 640, 3] frames: one sample frame, the camera panning
    right then back by PAN_STEP_PX per frame (edges replicated), so faces move as in a video and the
    loop has no jump."""
    import cv2

    from fer_ros.sample_frames import sample_frame

    frame = sample_frame(num_faces, FRAME_SIZE, SEEDS[0])[0]
    half = CLIP_FRAMES // 2
    shifts = [PAN_STEP_PX * (i if i < half else CLIP_FRAMES - i) for i in range(CLIP_FRAMES)]
    return [cv2.warpAffine(frame, np.float32([[1, 0, dx], [0, 1, dx / 2]]), FRAME_SIZE, borderMode=cv2.BORDER_REPLICATE)
            for dx in shifts]


# --- 1. pipeline and peer, interleaved ---------------------------------------------------------------
# Each runner times `count` frames of a scenario per call. Runners take turns in small chunks, so a
# change in the machine's background load hits ours and the peer alike and their ratio stays fair.

CASES = (('1_face', 1), ('5_faces', 5))


class PipelineRunner:
    """Our Pipeline with one detector profile; records every stage of every frame, and per detect mode."""

    def __init__(self, model_path: str, detector_overrides: dict, frames: dict) -> None:
        from fer_ros.backends import create_pipeline
        from fer_ros.perception.detectors import DetectorConfig
        from fer_ros.pipeline import PipelineConfig

        self.detector = DetectorConfig(**detector_overrides)
        self.pipeline = create_pipeline(PipelineConfig(model_path=model_path, backend='cpu',
                                                       detector=self.detector))
        self.frames = frames
        self.stages = {case: {} for case, _ in CASES}
        self.by_mode = {case: {'full': {}, 'roi': {}} for case, _ in CASES}
        self.found = {case: [] for case, _ in CASES}
        self._i = 0

    def run(self, case: str, count: int, record: bool = True) -> None:
        images = self.frames[case]
        for _ in range(count):
            self._i += 1
            result = self.pipeline.process(images[self._i % len(images)], self._i / 30.0)
            if not record:
                continue
            timing = dict(result.timing_ms)
            timing['detect+preprocess+infer'] = timing['detect'] + timing['preprocess'] + timing['infer']
            for stage, ms in timing.items():
                self.stages[case].setdefault(stage, []).append(ms)
                self.by_mode[case][result.detect_mode].setdefault(stage, []).append(ms)
            self.found[case].append(result.num_detections)

    def report(self) -> dict:
        p, cfg = self.pipeline, self.detector
        out = {'model': p.spec.name, 'backend': p.backend_name, 'detector': p.detector_name,
               'detector_max_side': cfg.max_side, 'detector_threads': cfg.threads,
               'full_scan_s': cfg.full_scan_s, 'roi_scale': cfg.roi_scale, 'roi_face_px': cfg.roi_face_px}
        for case, _ in CASES:
            found = self.found[case]
            out[case] = {'frames': len(found), 'faces_detected': {'min': int(min(found)), 'max': int(max(found))},
                         'stages_ms': {stage: summary(v) for stage, v in self.stages[case].items()},
                         'by_detect_mode': {mode: {'frames': len(st.get('total', [])),
                                                   'stages_ms': {stage: summary(v) for stage, v in st.items()}}
                                            for mode, st in self.by_mode[case].items() if st}}
        return out


class PeerRunner:
    """The `fer` library in its own venv, driven over stdin/stdout (see fer_peer_server.py)."""

    def __init__(self, venv: str, frames: dict, tmp: str) -> None:
        python = peer_python(venv)
        data = os.path.join(tmp, 'frames.npz')
        np.savez(data, **{case: np.stack(images) for case, images in frames.items()})
        self._errors = open(os.path.join(tmp, 'peer.err'), 'w+')
        self._proc = subprocess.Popen([python, PEER_SERVER, data], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._errors, text=True, bufsize=1)
        self.versions = json.loads(self._line('READY '))
        self.ms = {v: {case: [] for case, _ in CASES} for v in ('tflite', 'keras')}
        self.found = {v: {case: [] for case, _ in CASES} for v in ('tflite', 'keras')}

    def _line(self, prefix: str = '') -> str:
        line = self._proc.stdout.readline()
        if not line.startswith(prefix) or not line.strip():
            self._errors.seek(0)
            tail = '\n'.join(self._errors.read().strip().splitlines()[-8:])
            raise RuntimeError(f'the fer library (peer) stopped (exit {self._proc.poll()}):\n{tail}')
        return line[len(prefix):]

    def run(self, variant: str, case: str, count: int, record: bool = True) -> None:
        self._proc.stdin.write(f'{variant} {case} {count}\n')
        answer = json.loads(self._line())
        if record:
            self.ms[variant][case] += answer['ms']
            self.found[variant][case] += answer['faces']

    def report(self) -> dict:
        out = dict(self.versions, detector='OpenCV Haar cascade (fer default)')
        for variant in self.ms:
            out[variant] = {case: {'ms': summary(self.ms[variant][case]),
                                   'faces_detected': {'min': min(self.found[variant][case]),
                                                      'max': max(self.found[variant][case])}}
                            for case, _ in CASES}
        return out

    def close(self) -> None:
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._errors.close()


def bench_interleaved(model_path: str, frames: int, warmup: int, peer_venv: str | None, chunk: int = 10):
    """(pipeline report per profile, peer report or {'error'} or None)."""
    images = {case: scenario_clip(n) for case, n in CASES}
    runners = {name: PipelineRunner(model_path, overrides, images) for name, overrides in PROFILES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        peer, peer_report = None, None
        if peer_venv:
            try:
                peer = PeerRunner(peer_venv, images, tmp)
            except (RuntimeError, OSError) as exc:
                peer_report = {'error': str(exc)}
                print(f'bench: {exc}', file=sys.stderr)
        try:
            calls = []
            for case, _ in CASES:
                calls += [(r.run, (case,)) for r in runners.values()]
                if peer:
                    calls += [(peer.run, ('tflite', case)), (peer.run, ('keras', case))]
            for fn, args in calls:
                fn(*args, warmup, record=False)
            rounds = -(-frames // chunk)
            for _ in progress(range(rounds), 'pipeline and peer', rounds):
                for fn, args in calls:
                    fn(*args, chunk)
            if peer:
                peer_report = peer.report()
        except (RuntimeError, OSError, ValueError) as exc:
            peer_report = {'error': str(exc)}
            print(f'bench: {exc}', file=sys.stderr)
        finally:
            if peer:
                peer.close()
    return {name: r.report() for name, r in runners.items()}, peer_report


SMALL_FACE_HEIGHTS = (20, 24, 32, 40, 48, 56, 64)


# ROI-mode recall: the face has moved by this fraction of its size since the box the search is around
ROI_RECALL_MOTION = 0.25
# a pasted face counts as found when a detection overlaps its true box by at least this IoU
RECALL_IOU = 0.4


def small_face_recall(detector, roi: bool = False) -> dict[str, float]:
    """{face height px: fraction found} for single faces pasted at 12 places/variants in a 640x480 frame.

    roi: search only around the face's box shifted by ROI_RECALL_MOTION of its size (alternately
    right/left/down/up), as ROI mode does with the box of the previous frame; False: the whole frame.
    """
    from fer_ros.perception.tracking import box_iou
    from fer_ros.sample_frames import FACE_SOURCES, background, paste_face

    moves = ((1, 0), (-1, 0), (0, 1), (0, -1))
    recall = {}
    for height in SMALL_FACE_HEIGHTS:
        hits = total = 0
        for source in FACE_SOURCES:
            for mirror in (False, True):
                for cx in (120, 320, 520):
                    frame = background(FRAME_SIZE).copy()
                    x, y, w, h = paste_face(frame, source, (cx, 240), height, mirror)
                    if roi:
                        dx, dy = moves[total % len(moves)]
                        step = ROI_RECALL_MOTION * max(w, h)
                        found = detector.detect(frame, regions=[(x + dx * step, y + dy * step, w, h)])
                    else:
                        found = detector.detect(frame)
                    # a hit is a detection on the pasted face (a false positive elsewhere is not)
                    boxes = np.array([f.box for f in found], np.float64).reshape(-1, 4)
                    hits += bool(len(found)) and float(box_iou(boxes, np.array([[x, y, w, h]])).max()) >= RECALL_IOU
                    total += 1
        recall[str(height)] = round(hits / total, 3)
    return recall


def bench_detector_sizes(frames: int, warmup: int, sides=(640, 480, 400, 320)) -> list[dict]:
    """Detection time, and recall vs face size, for each detector kind and input size (the main
    latency knob)."""
    from fer_ros.backends import create_face_detector
    from fer_ros.perception.detectors import DetectorConfig

    rows = []
    pairs = [(kind, side) for kind in DETECTOR_KINDS_BENCHED for side in sides]
    for kind, side in progress(pairs, 'detector sizes', len(pairs)):
        try:
            detector = create_face_detector(DetectorConfig(kind=kind, max_side=side, min_face_size=8))
        except (RuntimeError, FileNotFoundError) as exc:     # e.g. no yuface on aarch64
            rows.append({'detector': kind, 'max_side': side, 'error': str(exc)})
            continue
        row = {'detector': kind, 'max_side': side}
        for case, num_faces in (('1_face', 1), ('5_faces', 5)):
            images = scenario_frames(num_faces)
            times, found = [], []
            for i in range(warmup + frames):
                t0 = time.perf_counter()
                n = len(detector.detect(images[i % len(images)]))
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1e3)
                    found.append(n)
            row[case] = {'detect_ms': summary(times), 'faces_detected': {'min': min(found), 'max': max(found)}}
        row['recall_by_face_height_px'] = small_face_recall(detector)
        rows.append(row)
    # ROI mode at the default settings (its windows do not depend on max_side)
    for kind in DETECTOR_KINDS_BENCHED[:2]:
        detector = create_face_detector(DetectorConfig(kind=kind, min_face_size=8))
        cfg = detector.config
        rows.append({'detector': kind, 'mode': 'roi', 'roi_scale': cfg.roi_scale, 'roi_face_px': cfg.roi_face_px,
                     'face_motion': ROI_RECALL_MOTION,
                     'recall_by_face_height_px': small_face_recall(detector, roi=True)})
    return rows


# --- 2. classifier ------------------------------------------------------------------------------------

def classifier_targets(extra: list[str]) -> list[tuple[str, str]]:
    """(model path, backend) pairs available on this machine."""
    import importlib.util

    from fer_ros.backends.onnxruntime_backend import read_onnx_metadata
    from fer_ros.backends.selection import probe_machine
    from fer_ros.core.backend_options import ENGINE_SUFFIXES, TORCH_SUFFIXES
    from fer_ros.core.spec import ModelSpec
    from fer_ros.util.paths import default_model_path

    models = []
    try:
        models.append(default_model_path())
    except FileNotFoundError:
        pass
    models += sorted(glob.glob(os.path.join(REPO, 'models', '*.onnx'))) + list(extra)
    seen, pairs = set(), []
    trt = probe_machine().usable('tensorrt')     # importable is not runnable (libraries, cuda-python, GPU)
    has_torch = importlib.util.find_spec('torch') is not None
    for path in models:
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if path.endswith('.onnx') and ModelSpec.METADATA_KEY not in read_onnx_metadata(path):
            continue            # not a classifier: the face detector (timed in part 1), the people networks
        if path.endswith('.onnx'):
            pairs.append((path, 'cpu'))
            if trt:
                pairs.append((path, 'tensorrt'))
            checkpoint = os.path.splitext(path)[0] + '.pt'
            if has_torch and os.path.isfile(checkpoint):
                pairs.append((checkpoint, 'torch'))
        elif path.endswith(TORCH_SUFFIXES) and has_torch:
            pairs.append((path, 'torch'))
        elif path.endswith(ENGINE_SUFFIXES) and trt:
            pairs.append((path, 'tensorrt'))
    return pairs


def face_batch(spec, size: int) -> np.ndarray:
    """float32[size, C, H, W] of real face crops (the 5 faces of sample frames, repeated)."""
    from fer_ros.perception.preprocess import crop_faces
    from fer_ros.sample_frames import sample_frame

    crops = []
    for seed in SEEDS:
        frame, boxes = sample_frame(5, FRAME_SIZE, seed)
        crops.append(crop_faces(frame, boxes, spec, 0.2))
    crops = np.concatenate(crops)
    return np.ascontiguousarray(crops[np.arange(size) % len(crops)])


def bench_classifier(path: str, backend_name: str, iterations: int) -> dict:
    from fer_ros.backends import create_backend

    # one CPU thread for every backend, as the node runs ONNX Runtime (torch would take all cores)
    backend = create_backend(path, backend_name, intra_op_threads=1, torch_threads=1)
    entry = {'model': backend.spec.name, 'path': os.path.relpath(path, REPO), 'backend': backend.name,
             'device': backend.device, 'batch': {}}
    for size in (1, 8, 32):
        batch = face_batch(backend.spec, size)
        for _ in range(10):
            backend.infer(batch)
        times = []
        for _ in progress(range(iterations), f'{backend.name} {backend.spec.name} b{size}', iterations):
            t0 = time.perf_counter()
            backend.infer(batch)
            times.append((time.perf_counter() - t0) * 1e3)
        stats = summary(times)
        stats['per_face_median'] = round(stats['median'] / size, 4)
        entry['batch'][str(size)] = stats
    backend.close()
    return entry


# --- 3. the peer --------------------------------------------------------------------------------------

def peer_python(venv: str) -> str:
    """The peer venv's interpreter (benchmarks/setup_peer.sh makes the venv; `make bench` runs it first).

    Raises:
        RuntimeError: the venv is missing or incomplete.
    """
    python = os.path.join(venv, 'bin', 'python')
    if not os.path.isfile(os.path.join(venv, '.fer_peer_ok')):
        raise RuntimeError(f'no peer venv at {venv}: run `bash benchmarks/setup_peer.sh {venv}` (or `make bench`)')
    return python


# --- report -------------------------------------------------------------------------------------------

def evaluate(report: dict) -> dict:
    checks = {}
    peer = report.get('peer')
    for profile, pipe in report['pipeline'].items():
        for case, limit in TARGETS_MS.items():
            median = pipe[case]['stages_ms']['detect+preprocess+infer']['median']
            checks[f'{profile}: {case} detect+preprocess+infer median ms'] = {
                'measured': median, 'target': f'<= {limit}', 'met': median <= limit}
        if peer and 'error' not in peer:
            for case in TARGETS_MS:
                ours = pipe[case]['stages_ms']['total']['median']
                best = min(peer['tflite'][case]['ms']['median'], peer['keras'][case]['ms']['median'])
                ratio = round(best / ours, 2)
                target = TARGET_RATIO.get(profile, TARGET_RATIO_DEFAULT)
                checks[f'{profile}: {case} frame rate vs fer'] = {
                    'measured': ratio, 'target': f'>= {target}', 'met': ratio >= target,
                    'ours_ms': ours, 'fer_fastest_ms': best}
    return checks


def print_report(report: dict) -> None:
    def cells(stages: dict) -> str:
        return '  '.join(f"{k} {v['median']:.2f}/{v['p90']:.2f}/{v['p99']:.2f}" for k, v in stages.items())

    for profile, pipe in report['pipeline'].items():
        print(f"\nPipeline [{profile}] ({pipe['model']}, {pipe['backend']}, {pipe['detector']} max_side "
              f"{pipe['detector_max_side']}, full_scan_s {pipe['full_scan_s']:g}, "
              f"roi_scale {pipe['roi_scale']}, roi_face_px {pipe['roi_face_px']}, x{pipe['detector_threads']} threads, "
              '640x480 frames), ms median / p90 / p99:')
        for case in ('1_face', '5_faces'):
            print(f"  {case:8s} {cells(pipe[case]['stages_ms'])}  (faces found {pipe[case]['faces_detected']['min']}.."
                  f"{pipe[case]['faces_detected']['max']})")
            modes = pipe[case]['by_detect_mode']
            if len(modes) > 1:
                for mode, entry in modes.items():
                    print(f"    {mode} frames ({entry['frames']}): {cells(entry['stages_ms'])}")
    print('\nDetectors vs input size: detect ms median (faces found), recall by face height in px:')
    for row in report['detector_input_size']:
        if 'error' in row:
            print(f"  {row['detector']:6s} max_side {row['max_side']:4d}: not measured ({row['error']})")
            continue
        recall = ' '.join(f'{h}:{r:.2f}' for h, r in row['recall_by_face_height_px'].items())
        if row.get('mode') == 'roi':
            print(f"  {row['detector']:6s} ROI mode (roi_scale {row['roi_scale']}, roi_face_px {row['roi_face_px']}, "
                  f"face moved {row['face_motion']} of its size): recall {recall}")
            continue
        times = '  '.join(f"{case} {row[case]['detect_ms']['median']:.2f} "
                          f"({row[case]['faces_detected']['min']}..{row[case]['faces_detected']['max']})"
                          for case in ('1_face', '5_faces'))
        print(f"  {row['detector']:6s} max_side {row['max_side']:4d}: {times}  recall {recall}")
    print('\nClassifier alone, ms median (p90) per call [per face]:')
    for entry in report['classifier']:
        cells = '  '.join(f"b{b} {s['median']:.3f} ({s['p90']:.3f}) [{s['per_face_median']:.3f}]"
                          for b, s in entry['batch'].items())
        print(f"  {entry['model']:28s} {entry['backend']:12s} {cells}")
    peer = report.get('peer')
    if peer and 'error' not in peer:
        print(f"\nPeer: fer {peer['fer']} (TensorFlow {peer['tensorflow']}, Haar), ms median / p90 / p99 per frame:")
        for variant in ('tflite', 'keras'):
            for case, v in peer[variant].items():
                s = v['ms']
                print(f"  {variant:7s} {case:8s} {s['median']:.2f}/{s['p90']:.2f}/{s['p99']:.2f}  "
                      f"faces found {v['faces_detected']['min']}..{v['faces_detected']['max']}")
    elif peer:
        print(f"\nPeer: not measured ({peer['error'].splitlines()[0]})")
    print('\nTargets:')
    for name, check in report['targets'].items():
        extra = f" (ours {check['ours_ms']} ms vs fer {check['fer_fastest_ms']} ms)" if 'ours_ms' in check else ''
        print(f"  {'MET ' if check['met'] else 'MISS'} {name}: {check['measured']} (target {check['target']}){extra}")


def machine() -> dict:
    info = {'platform': platform.platform(), 'python': platform.python_version(), 'cpus': os.cpu_count()}
    try:
        import onnxruntime
        info['onnxruntime'] = onnxruntime.__version__
    except ImportError:
        pass
    if hasattr(os, 'getloadavg'):
        info['load_average_at_start'] = [round(v, 2) for v in os.getloadavg()]
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m benchmarks.perception', description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', default=None, help='write the full report here (e.g. bench/bench.json)')
    parser.add_argument('--frames', type=int, default=200, help='timed frames per scenario (default %(default)s)')
    parser.add_argument('--warmup', type=int, default=20, help='untimed frames first (default %(default)s)')
    parser.add_argument('--iterations', type=int, default=200, help='timed classifier calls per batch size')
    parser.add_argument('--model', action='append', default=[], help='extra classifier to time (repeatable)')
    parser.add_argument('--no-peer', action='store_true', help='skip the fer library')
    parser.add_argument('--peer-venv', default=PEER_VENV, help='venv for the fer library (default %(default)s)')
    args = parser.parse_args(argv)
    if args.frames < 10 or args.warmup < 0 or args.iterations < 10:
        parser.error('--frames and --iterations must be >= 10, --warmup >= 0')
    for path in args.model:
        if not os.path.isfile(path):
            parser.error(f'--model {path}: no such file')
    import logging
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format='bench: %(levelname)s: %(message)s')

    from fer_ros.util.paths import default_model_path
    try:
        model = default_model_path()
    except FileNotFoundError as exc:
        print(f'bench: {exc}', file=sys.stderr)
        return 2
    report = {'machine': machine(), 'settings': {'frames': args.frames, 'warmup': args.warmup,
                                                 'iterations': args.iterations, 'frame_size': FRAME_SIZE,
                                                 'onnxruntime_threads': 1}}
    report['pipeline'], peer = bench_interleaved(model, args.frames, args.warmup,
                                                 None if args.no_peer else args.peer_venv)
    if peer is not None:
        report['peer'] = peer
    report['detector_input_size'] = bench_detector_sizes(max(10, args.frames // 4), min(args.warmup, 5))
    report['classifier'] = [bench_classifier(p, b, args.iterations) for p, b in classifier_targets(args.model)]
    status = 1 if peer is not None and 'error' in peer else 0
    report['targets'] = evaluate(report)
    if hasattr(os, 'getloadavg'):
        report['machine']['load_average_at_end'] = [round(v, 2) for v in os.getloadavg()]
    print_report(report)
    print(f"\nLoad average (1/5/15 min) at start {report['machine'].get('load_average_at_start')}, "
          f"at end {report['machine'].get('load_average_at_end')}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as fh:
            json.dump(report, fh, indent=2)
        print(f'\nwrote {args.json}')
    return status


if __name__ == '__main__':
    sys.exit(main())
