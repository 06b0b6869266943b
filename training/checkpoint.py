"""Checkpoints: everything needed to export a model and to resume training exactly.

A checkpoint is a plain dict saved with ``torch.save`` and loadable with ``weights_only=True``
(tensors, numbers, strings, lists, dicts, tuples only), so loading one never runs pickled code.
Keys: format, epoch (completed epochs), model {name, kwargs, in_channels, num_classes},
state_dict, labels, input {size, channels, mean, std}, dataset {format, path, name, split, ...},
metrics (of this checkpoint's weights), history (per-epoch rows), config, complexity, optimizer,
scheduler, scaler, rng (one entry per process), world_size, best_val_acc, torch_version.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

FORMAT = 'fer_ros.train/1'


def rng_state(device: torch.device) -> dict[str, Any]:
    """Python, NumPy, torch CPU (and this process's CUDA device) generator states."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        'python': [py[0], list(py[1]), py[2]],
        'numpy': [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        'torch': torch.get_rng_state(),
    }
    if device.type == 'cuda':
        state['cuda'] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state['numpy']
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state['torch'])
    if device.type == 'cuda' and 'cuda' in state:
        torch.cuda.set_rng_state(state['cuda'], device)


def save(payload: dict[str, Any], path: str) -> None:
    """Write atomically (temp file + rename): a crash mid-write never leaves a broken checkpoint."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load(path: str) -> dict[str, Any]:
    """Load a training checkpoint on the CPU.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a fer_ros training checkpoint (the message names the file).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for corrupt files
        raise ValueError(f'{path}: not a readable checkpoint ({exc})') from exc
    if not isinstance(ckpt, dict) or ckpt.get('format') != FORMAT:
        raise ValueError(f'{path}: not a fer_ros training checkpoint (format {FORMAT!r} expected)')
    return ckpt
