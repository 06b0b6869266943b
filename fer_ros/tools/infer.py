"""fer-infer: facial expressions of the faces in image files, one JSON object per image on stdout.

    fer-infer [--model PATH] [--backend auto|onnxruntime|tensorrt|torch] [--detector yuface|haar] IMAGE...

Each line is {"image", "faces": [{"box": [x, y, w, h], "expression", "confidence",
"probabilities": {label: p}}], "timing_ms": {"detect", "preprocess", "infer", "total"}} with faces in
detector-score order, boxes in image pixels, probabilities of this single image (no smoothing).
A file that is missing, empty or not a decodable image gives {"image", "error"} instead; the other
files are still processed and the exit status is 1 at the end. A model that cannot be loaded is
reported on stderr with exit status 2. Logs go to stderr, so stdout is pure JSON lines.
Never imports torch unless --backend torch (a .pt checkpoint) is asked for.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

import numpy as np

from fer_ros.backends import BACKENDS, BackendError, backend_for, create_face_detector
from fer_ros.core.validate import field_limits
from fer_ros.io.files import read_image
from fer_ros.io.image_codec import DEFAULT_MAX_PIXELS
from fer_ros.perception.detectors import DETECTOR_BACKENDS, DETECTOR_KINDS, DetectorConfig
from fer_ros.perception.preprocess import MIRROR_TTA_CHOICES
from fer_ros.pipeline import PipelineConfig, analyze_frame, mirror_enabled


def face_json(detection, probabilities: np.ndarray, labels: tuple[str, ...]) -> dict:
    best = int(np.argmax(probabilities))
    return {
        'box': [int(round(v)) for v in detection.box],
        'expression': labels[best],
        'confidence': round(float(probabilities[best]), 4),
        'probabilities': {label: round(float(p), 4) for label, p in zip(labels, probabilities)},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='fer-infer', description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images', nargs='+', metavar='IMAGE', help='image files (JPEG, PNG, ...)')
    parser.add_argument('--model', default='', help='classifier (.onnx, TensorRT engine or .pt checkpoint); '
                        'default: the converted mini-Xception (or $FER_ROS_MODEL)')
    parser.add_argument('--backend', default=PipelineConfig.backend, choices=BACKENDS)
    parser.add_argument('--detector', default=DetectorConfig.kind, choices=DETECTOR_KINDS)
    parser.add_argument('--detector-backend', default=DetectorConfig.backend, choices=DETECTOR_BACKENDS,
                        help="where the 'yunet' detector runs (default %(default)s)")
    parser.add_argument('--max-side', type=int, default=DetectorConfig.max_side,
                        help='detection runs on a copy downscaled to this longer side (default %(default)s)')
    parser.add_argument('--min-face', type=int, default=DetectorConfig.min_face_size, help='min face size, pixels')
    parser.add_argument('--threshold', type=float, default=DetectorConfig.confidence_threshold,
                        help='detector confidence threshold 0..1 (default %(default)s)')
    parser.add_argument('--max-faces', type=int, default=DetectorConfig.max_faces)
    parser.add_argument('--mirror-tta', default=PipelineConfig.mirror_tta, choices=MIRROR_TTA_CHOICES,
                        help="classify each face with its mirror image too, as the node does: 'model' "
                        '(default: what the model file says), always or never')
    margin = field_limits(PipelineConfig, 'crop_margin')
    parser.add_argument('--margin', type=float, default=margin.default,
                        help=f'crop margin {margin.low:g}..{margin.high:g} (default %(default)s)')
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='images with more pixels are refused before decoding (default %(default)s)')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format='fer-infer: %(levelname)s: %(message)s')
    try:
        config = PipelineConfig(model_path=args.model, backend=args.backend, crop_margin=args.margin,
                                detector=DetectorConfig(kind=args.detector, backend=args.detector_backend,
                                                        max_side=args.max_side, min_face_size=args.min_face,
                                                        confidence_threshold=args.threshold,
                                                        max_faces=args.max_faces))
        detector = create_face_detector(config.detector)
        backend = backend_for(config)
        mirror = mirror_enabled(args.mirror_tta, backend.spec)
    except (ValueError, FileNotFoundError, BackendError, RuntimeError) as exc:
        print(f'fer-infer: {exc}', file=sys.stderr)
        return 2
    labels = backend.labels
    failed = 0
    for path in args.images:
        try:
            image = read_image(path, args.max_pixels)
            result = analyze_frame(image, detector, backend, config.crop_margin, mirror=mirror)
        except (ValueError, BackendError) as exc:   # one bad file never stops the batch
            failed += 1
            print(json.dumps({'image': path, 'error': str(exc)}), flush=True)
            continue
        timing = {k: round(v, 3) for k, v in result.timing_ms.items()}
        timing['total'] = round(sum(result.timing_ms.values()), 3)
        faces = [face_json(d, p, labels) for d, p in zip(result.detections, result.probabilities)]
        print(json.dumps({'image': path, 'faces': faces, 'timing_ms': timing}), flush=True)
    if failed:
        print(f'fer-infer: {failed} of {len(args.images)} file(s) could not be read', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
