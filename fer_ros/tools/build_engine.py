"""fer-build-engine: build the TensorRT engine of an ONNX classifier or face detector offline (not at node start-up).

    fer-build-engine model.onnx --fp16                      # into the engine cache the node reads
    fer-build-engine models/face_detector_libfacedetection.onnx --fp16 --max-side 640   # the face detector
    fer-build-engine model.onnx --int8 --calib crops/ --max-batch 16      # TensorRT 10 only
    fer-build-engine model.onnx --fp16 --out model.fp16.engine   # a standalone engine file

Without --out the engine goes to the cache (``--cache-dir``, else $FER_ROS_ENGINE_CACHE, else
~/.cache/fer_ros/engines) under the key the TensorRT backend computes (ONNX sha256, TensorRT version,
GPU, precision, input profile, calibration data), so a node started with the same ONNX file, settings and
``backend: tensorrt`` (``detector_backend: tensorrt``) loads it instead of building; an up-to-date cached
engine is not rebuilt unless ``--force``. With --out the engine file (model metadata inside) is written
there; pass it as the node's model_path.

Which model: an ONNX with a classifier's ``fer_ros`` metadata gets a batch profile (--max-batch); the face
detector's (``fer_ros_detector``) an image profile up to --max-side squared (give the node's largest
detector input: ``DetectorConfig.input_side_limit``, 640 for the defaults).

Precision: no flag = FP32; --fp16 = an fp16 copy of the ONNX as a strongly typed network (TensorRT 10 and
11); --int8 (classifier, TensorRT 10 only) calibrates INT8 on --calib DIR (a folder of face crops, ideally a
few hundred from the deployment camera) with FP16 for the rest.

Exit status: 0 built or up to date; 1 the build failed; 2 bad arguments or TensorRT/CUDA missing.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from fer_ros.backends.base import BackendError
from fer_ros.backends.cuda_runtime import open_cuda
from fer_ros.backends.engine_file import default_engine_cache_dir, read_engine_header
from fer_ros.backends.selection import import_tensorrt
from fer_ros.backends.tensorrt_calibration import DEFAULT_MAX_CALIB_IMAGES
from fer_ros.backends.tensorrt_engine import (
    DEFAULT_MAX_BATCH,
    DEFAULT_WORKSPACE_MB,
    build_engine,
    classifier_profiles,
    detector_profiles,
    ensure_engine,
    onnx_metadata,
)
from fer_ros.core.spec import METADATA_KEY, ModelSpec
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.detectors.yunet import DetectorSpec

PROG = 'fer-build-engine'


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('onnx', help='ONNX classifier exported with fer_ros metadata (fer-export)')
    parser.add_argument('--fp16', action='store_true', help='allow FP16 kernels (default: FP32 only)')
    parser.add_argument('--int8', action='store_true', help='INT8 with calibration on --calib (TensorRT 10 only)')
    parser.add_argument('--calib', metavar='DIR', help='folder of face-crop images for --int8')
    parser.add_argument('--max-batch', type=int, default=DEFAULT_MAX_BATCH, metavar='N',
                        help=f'largest number of faces per inference call (default {DEFAULT_MAX_BATCH})')
    parser.add_argument('--max-side', type=int, default=DetectorConfig().input_side_limit, metavar='PX',
                        help='face detector: the longest input side the engine takes (default %(default)s)')
    parser.add_argument('--out', metavar='PATH', help='write a standalone engine file here instead of into the cache')
    parser.add_argument('--cache-dir', metavar='DIR',
                        help=f'engine cache folder (default {default_engine_cache_dir()})')
    parser.add_argument('--force', action='store_true', help='rebuild even if the cached engine is up to date')
    parser.add_argument('--workspace-mb', type=int, default=DEFAULT_WORKSPACE_MB, metavar='MB',
                        help=f'builder workspace limit (default {DEFAULT_WORKSPACE_MB})')
    parser.add_argument('--max-calib-images', type=int, default=DEFAULT_MAX_CALIB_IMAGES, metavar='N',
                        help=f'use at most this many calibration images (default {DEFAULT_MAX_CALIB_IMAGES})')
    parser.add_argument('-v', '--verbose', action='store_true', help='log more')
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    precision = 'int8' if args.int8 else 'fp16' if args.fp16 else 'fp32'

    # Argument errors first, naming the bad file or option (argparse exits 2).
    if not os.path.isfile(args.onnx):
        parser.error(f'ONNX file not found: {args.onnx}')
    if not args.onnx.lower().endswith('.onnx'):
        parser.error(f'{args.onnx}: expected an .onnx file')
    if args.int8 and not args.calib:
        parser.error('--int8 needs --calib DIR (a folder of face crops for calibration)')
    if args.calib and not args.int8:
        parser.error('--calib is only used with --int8')
    if args.calib and not os.path.isdir(args.calib):
        parser.error(f'--calib: folder not found: {args.calib}')
    if not 1 <= args.max_batch <= 4096:
        parser.error(f'--max-batch must be in 1..4096, got {args.max_batch}')
    if args.workspace_mb < 16:
        parser.error(f'--workspace-mb must be >= 16, got {args.workspace_mb}')
    if args.max_calib_images < 1:
        parser.error(f'--max-calib-images must be >= 1, got {args.max_calib_images}')
    if args.out and args.cache_dir:
        parser.error('--out and --cache-dir exclude each other')

    if not 32 <= args.max_side <= 8192:
        parser.error(f'--max-side must be in 32..8192, got {args.max_side}')
    try:
        metadata = onnx_metadata(args.onnx)
        if METADATA_KEY in metadata:
            profiles = classifier_profiles(args.onnx, ModelSpec.from_metadata(metadata, args.onnx), args.max_batch)
        elif DetectorSpec.METADATA_KEY in metadata:
            if args.int8:
                parser.error('--int8 calibrates the classifier (face crops); build the face detector with --fp16')
            profiles = detector_profiles('image', args.max_side)
        else:
            parser.error(f'{args.onnx}: no fer_ros metadata (a classifier from fer-export or the face detector '
                         'from make setup)')
        trt = import_tensorrt()
        cuda = open_cuda()
    except (BackendError, ValueError) as exc:
        print(f'{PROG}: {exc}', file=sys.stderr)
        return 2
    try:
        kwargs = dict(precision=precision, profiles=profiles, calib_dir=args.calib,
                      workspace_mb=args.workspace_mb, max_calib_images=args.max_calib_images, cuda=cuda)
        if args.out:
            build_engine(args.onnx, args.out, **kwargs)
            path, built = args.out, True
        else:
            path, built = ensure_engine(args.onnx, cache_dir=args.cache_dir, force=args.force, **kwargs)
        header = read_engine_header(path)
    except (BackendError, ValueError, OSError) as exc:
        print(f'{PROG}: {args.onnx}: {exc}', file=sys.stderr)
        return 1
    finally:
        cuda.close()
    fields = header['key_fields']
    state = f"built in {header.get('build_s', '?')} s" if built else 'up to date (cached; --force rebuilds)'
    print(f'{path}\n  {state}; {os.path.getsize(path) / 1e6:.1f} MB\n'
          f"  TensorRT {trt.__version__}, GPU {fields['gpu_name']}, {fields['precision']}, "
          f"profiles {fields['profiles']}, key {header['key'][:16]}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
