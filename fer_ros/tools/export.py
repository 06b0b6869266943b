"""fer-export: a training checkpoint (fer-train's last.pt / best.pt) -> ONNX with its ModelSpec.

    fer-export runs/fer2013_light_ntwrn/last.pt --out models/light_ntwrn_fer2013.onnx

The ONNX file takes ``input`` float32[N, C, H, W] (dynamic N) and returns ``probabilities``
float32[N, K]. Its metadata (key ``fer_ros``) holds the ModelSpec: labels in order, input size,
channels, normalisation, and in ``extra`` the provenance: model name and constructor arguments,
training dataset and split, test accuracy, epoch, parameter/MAC counts and the checkpoint's
sha256. The ONNX checker runs, and ONNX Runtime is compared with PyTorch on random inputs; a
difference above --atol (default 1e-4) fails the export (exit 1, no file left behind).
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys

from fer_ros.core.spec import ModelSpec
from fer_ros.io.files import sha256_file


def export_checkpoint(checkpoint_path: str, out: str, *, opset: int = 17, atol: float = 1e-4
                      ) -> tuple[ModelSpec, float]:
    """Export ``checkpoint_path`` to ``out``; returns (spec, max |ORT - torch|).

    Raises:
        FileNotFoundError: no checkpoint.
        ValueError: not a fer-train checkpoint, weights that do not fit the model, or ONNX Runtime
            differing from PyTorch by more than ``atol`` (the ONNX file is removed then).
    """
    from fer_ros.models import checkpoint
    from fer_ros.models.onnx_export import export_onnx

    ckpt = checkpoint.load(checkpoint_path)
    exported = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    spec = checkpoint.spec_from_checkpoint(ckpt, checkpoint_path, use_stored=False, extra={
        'checkpoint_sha256': sha256_file(checkpoint_path), 'exported_utc': exported})
    model = checkpoint.build_model(ckpt, checkpoint_path, spec)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    try:
        diff = export_onnx(model, spec, out, opset=opset, atol=atol)
    except ValueError:
        if os.path.exists(out):
            os.remove(out)
        raise
    return spec, diff


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='fer-export', description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint', help="fer-train checkpoint (last.pt or best.pt)")
    p.add_argument('--out', required=True, help='ONNX file to write')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset (default 17)')
    p.add_argument('--atol', type=float, default=1e-4,
                   help='largest allowed |ONNX Runtime - PyTorch| on random inputs (default 1e-4)')
    args = p.parse_args(argv)
    try:
        spec, diff = export_checkpoint(args.checkpoint, args.out, opset=args.opset, atol=args.atol)
    except FileNotFoundError as exc:
        print(f'fer-export: error: {exc}', file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f'fer-export: error: {exc}', file=sys.stderr)
        return 1 if 'differs from PyTorch' in str(exc) else 2
    acc = spec.extra.get('accuracy')
    print(f'fer-export: wrote {args.out}')
    print(f'  model {spec.name}, input {spec.channels}x{spec.height}x{spec.width}, mean {list(spec.mean)}, '
          f'std {list(spec.std)}')
    print(f'  labels {list(spec.labels)}')
    print(f"  trained on {spec.extra['training_dataset']} ({spec.extra['split']}), test accuracy "
          f"{'n/a' if acc is None else f'{100 * acc:.2f} %'}, epoch {spec.extra['epoch']}")
    print(f"  checkpoint sha256 {spec.extra['checkpoint_sha256']}")
    print(f'  ONNX checker passed; max |ONNX Runtime - PyTorch| = {diff:.3g} (limit {args.atol:g})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
