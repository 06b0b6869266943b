"""PyTorch backend: runs a training checkpoint directly (evaluation, parity tests, debugging).

Not on the run-time path: the node and fer-infer use ONNX Runtime or TensorRT unless a checkpoint is
given explicitly, so a robot never needs torch.

Checkpoint format (a ``torch.save``'d dict, loadable with ``weights_only=True``):

    {
      'model':        str,   registry name, e.g. 'mini_xception' (fer_ros.models.create_model)
      'model_kwargs': dict,  constructor arguments besides num_classes / in_channels (which default
                             to len(spec.labels) / spec.channels), e.g. {'input_size': 64}
      'state_dict':   dict,  the model's state_dict (tensors)
      'spec':         str,   ModelSpec JSON (fer_ros.core.spec): labels, input size, channels,
                             normalisation; the same JSON fer-export writes into the ONNX metadata
    }

Optional extra keys (epoch, optimizer state, metrics...) are ignored here. The model's forward
returns logits float32[N, K]; this backend applies the softmax (like the ONNX export does).
``save_checkpoint`` / ``load_checkpoint`` are the one implementation of this format.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from fer_ros.backends.base import Backend, BackendError
from fer_ros.backends.onnxruntime_backend import check_batch
from fer_ros.core.spec import ModelSpec

CHECKPOINT_KEYS = ('model', 'model_kwargs', 'state_dict', 'spec')


def save_checkpoint(path: str, model_name: str, model, spec: ModelSpec, model_kwargs: dict[str, Any] | None = None,
                    **extra: Any) -> None:
    """Write ``model`` (an nn.Module built by ``create_model(model_name, **model_kwargs)``) in the
    checkpoint format above; ``extra`` keys (epoch, metrics...) are stored alongside."""
    import torch

    clash = set(extra) & set(CHECKPOINT_KEYS)
    if clash:
        raise ValueError(f'save_checkpoint: extra keys {sorted(clash)} collide with the format')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({'model': model_name, 'model_kwargs': dict(model_kwargs or {}),
                'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
                'spec': spec.to_json(), **extra}, path)


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
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in CHECKPOINT_KEYS):
        have = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise BackendError(f'{path}: a fer_ros checkpoint needs keys {list(CHECKPOINT_KEYS)}, has {have}')
    try:
        spec = ModelSpec.from_json(ckpt['spec'])
        kwargs = dict(ckpt['model_kwargs'])
        kwargs.setdefault('num_classes', spec.num_classes)
        kwargs.setdefault('in_channels', spec.channels)
        model = create_model(ckpt['model'], **kwargs)
        model.load_state_dict(ckpt['state_dict'])
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise BackendError(f'{path}: cannot rebuild model {ckpt.get("model")!r}: {exc}') from exc
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
