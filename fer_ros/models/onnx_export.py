"""Shared ONNX export: PyTorch classifier + ModelSpec -> ONNX file with the spec in its metadata.

Used by ``fer-export`` (trained checkpoints) and the default-model conversion. Needs torch and onnx.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from fer_ros.core.spec import METADATA_KEY, ModelSpec


class _WithSoftmax(nn.Module):
    """Appends softmax so the ONNX output is probabilities (models return logits, timm style)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def export_onnx(model: nn.Module, spec: ModelSpec, path: str, *, opset: int = 17,
                check_batches: tuple[int, ...] = (1, 4), atol: float = 1e-4, seed: int = 0) -> float:
    """Export ``model`` (returns logits float32[N, K]) to ``path`` with a dynamic batch axis.

    The ONNX graph takes ``spec.input_name`` float32[N, C, H, W] and returns ``spec.output_name``
    float32[N, K] (probabilities when ``spec.output == 'probabilities'``). ``spec`` is stored as JSON
    under the metadata key ``fer_ros``. The file is checked with the ONNX checker and ONNX Runtime is
    compared with PyTorch on random inputs of each batch size in ``check_batches``.

    Returns:
        The largest absolute output difference between ONNX Runtime and PyTorch.
    Raises:
        ValueError: ``model``'s output size does not match ``spec.labels``, or the difference
            exceeds ``atol``.
    """
    import onnx
    import onnxruntime as ort

    # eval() on the wrapper: torch.onnx.export restores the *wrapper's* training flag afterwards,
    # recursively, and a fresh wrapper is in training mode (BatchNorm would then use batch statistics
    # in the ORT-vs-torch check below).
    wrapped = (_WithSoftmax(model) if spec.output == 'probabilities' else model).cpu().eval()
    example = torch.zeros(2, spec.channels, spec.height, spec.width)
    with torch.no_grad():
        out = wrapped(example)
    if out.shape[1] != spec.num_classes:
        raise ValueError(f'model outputs {out.shape[1]} classes but spec has {spec.num_classes} labels')
    torch.onnx.export(
        wrapped, (example,), path, input_names=[spec.input_name], output_names=[spec.output_name],
        dynamic_axes={spec.input_name: {0: 'batch'}, spec.output_name: {0: 'batch'}},
        opset_version=opset, dynamo=False)

    proto = onnx.load(path)
    onnx.helper.set_model_props(proto, spec.to_metadata())
    proto.producer_name = 'fer_ros'
    onnx.checker.check_model(proto)
    onnx.save(proto, path)

    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in check_batches:
        x = rng.standard_normal((n, spec.channels, spec.height, spec.width)).astype(np.float32)
        with torch.no_grad():
            ref = wrapped(torch.from_numpy(x)).numpy()
        got = session.run([spec.output_name], {spec.input_name: x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    if worst > atol:
        raise ValueError(f'{path}: ONNX Runtime differs from PyTorch by {worst:.3g} > {atol:g}')
    return worst
