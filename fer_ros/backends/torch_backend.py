"""PyTorch backend: runs a training checkpoint directly (evaluation, parity tests, debugging).

Not on the run-time path: the node and fer-infer use ONNX Runtime or TensorRT unless a checkpoint is
given explicitly, so a robot never needs torch. Checkpoint format: ``fer_ros.models.checkpoint``
(what fer-train and fer-convert-fer-model write). The model's forward returns logits float32[N, K];
this backend applies the softmax (as the ONNX export does).
"""
from __future__ import annotations

import numpy as np

from fer_ros.backends.base import Backend, BackendError, check_batch


def load_checkpoint(path: str, device: str = 'cpu'):
    """Rebuild the model of a checkpoint: (nn.Module in eval mode on ``device``, ModelSpec, raw dict).

    Raises:
        BackendError: missing file, not a checkpoint of this format, unknown model name, or a state
            dict that does not fit the model (the message names the file and the cause).
    """
    from fer_ros.models import checkpoint

    try:
        ckpt = checkpoint.load(path, device)
        spec = checkpoint.spec_from_checkpoint(ckpt, path)
        model = checkpoint.build_model(ckpt, path, spec)
    except (FileNotFoundError, checkpoint.CheckpointError) as exc:
        raise BackendError(str(exc)) from exc
    return model.to(device).eval(), spec, ckpt


class TorchBackend(Backend):
    """Runs a fer_ros training checkpoint with PyTorch.

    Args:
        checkpoint_path: a .pt file (fer_ros.models.checkpoint format).
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
