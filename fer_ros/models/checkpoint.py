"""The fer_ros checkpoint format: the one definition, used by training, fer-export and the torch backend.

A checkpoint is a plain dict saved with ``torch.save`` and loadable with ``weights_only=True``
(tensors, numbers, strings, lists, dicts, tuples only), so loading one never runs pickled code. Keys:

    format      'fer_ros.train/1'
    model       {'name': registry name (fer_ros.models.create_model), 'kwargs': dict,
                 'in_channels': int, 'num_classes': int}
    state_dict  the model's state_dict (tensors)
    labels      class order, canonical expression words
    input       {'size': int (square side), 'channels': 1 | 3, 'mean': [..], 'std': [..]}
                (model input = (pixel / 255 - mean) / std)
    spec        optional: ModelSpec JSON (fer_ros.core.spec) with name and provenance (converted models)
    epoch       completed epochs
    training only (fer-train writes them; fer-export reads the provenance ones): dataset {format, path,
    name, split, split_text}, metrics, history, config, complexity {params, macs}, optimizer, scheduler,
    scaler, rng, world_size, best_val_acc, torch_version.

The model's forward returns logits float32[N, K]; consumers add the softmax.
"""
from __future__ import annotations

import os
from typing import Any

from fer_ros.io.files import atomic_path
from fer_ros.core.spec import ModelSpec

FORMAT = 'fer_ros.train/1'


class CheckpointError(ValueError):
    """Not a loadable fer_ros checkpoint, or its model cannot be rebuilt; the message names the file."""


def save(payload: dict[str, Any], path: str) -> None:
    """``torch.save`` through a temporary file + rename: a crash mid-write never leaves a broken checkpoint."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str, device: str = 'cpu') -> dict[str, Any]:
    """The checkpoint dict, tensors on ``device``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: unreadable, or not of this format.
    """
    import torch

    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only errors have many types
        raise CheckpointError(f'{path}: not a readable checkpoint ({exc})') from exc
    if not isinstance(ckpt, dict) or ckpt.get('format') != FORMAT:
        found = ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f'{path}: not a fer_ros training checkpoint (format {FORMAT!r} expected, found {found!r})')
    return ckpt


def provenance(ckpt: dict[str, Any], path: str) -> dict[str, Any]:
    """Where a trained checkpoint's weights come from (ModelSpec.extra of an exported model)."""
    data, metrics = ckpt.get('dataset', {}), ckpt.get('metrics', {})
    split = data.get('split', {})
    return {
        'model': ckpt['model']['name'],
        'model_kwargs': dict(ckpt['model'].get('kwargs', {})),
        'training_dataset': data.get('name', ''),
        'training_dataset_format': data.get('format', ''),
        'training_dataset_path': data.get('path', ''),
        'split': data.get('split_text', ''),
        'split_mode': split.get('mode', ''),
        'split_seed': split.get('seed'),
        'test_images': split.get('test'),
        'accuracy': metrics.get('test_acc'),
        'accuracy_split': 'test',
        'mean_class_recall': metrics.get('test_mean_class_recall'),
        'val_accuracy': metrics.get('val_acc'),
        'epoch': ckpt.get('epoch'),
        'params': ckpt.get('complexity', {}).get('params'),
        'macs': ckpt.get('complexity', {}).get('macs'),
        'checkpoint': os.path.basename(path),
        'torch_version': ckpt.get('torch_version', ''),
    }


def spec_from_checkpoint(ckpt: dict[str, Any], path: str, *, use_stored: bool = True,
                         extra: dict[str, Any] | None = None) -> ModelSpec:
    """The ModelSpec of a checkpoint: its stored ``spec`` (when present and ``use_stored``), else one
    built from ``labels`` / ``input`` with ``provenance`` (plus ``extra``) in ModelSpec.extra."""
    if use_stored and ckpt.get('spec'):
        return ModelSpec.from_json(ckpt['spec'])
    inp = ckpt['input']
    return ModelSpec(name=str(ckpt['model']['name']), labels=tuple(ckpt['labels']), height=int(inp['size']),
                     width=int(inp['size']), channels=int(inp['channels']), mean=tuple(inp['mean']),
                     std=tuple(inp['std']), output='probabilities', extra={**provenance(ckpt, path), **(extra or {})})


def build_model(ckpt: dict[str, Any], path: str, spec: ModelSpec | None = None):
    """Rebuild a checkpoint's model with its weights (nn.Module, train mode, on the weights' device).

    Raises:
        CheckpointError: unknown model name, labels/input that contradict the model's class or channel
            count, or a state dict that does not fit the model (the message names the file).
    """
    from fer_ros.models import create_model

    info: dict = ckpt['model'] if isinstance(ckpt.get('model'), dict) else {}
    try:
        spec = spec or spec_from_checkpoint(ckpt, path)
        if (info['num_classes'], info['in_channels']) != (spec.num_classes, spec.channels):
            raise ValueError(f"model has {info['num_classes']} classes / {info['in_channels']} channels, "
                             f'labels/input say {spec.num_classes} / {spec.channels}')
        model = create_model(info['name'], num_classes=int(info['num_classes']), in_channels=int(info['in_channels']),
                             **dict(info.get('kwargs') or {}))
        model.load_state_dict(ckpt['state_dict'])
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f'{path}: cannot rebuild model {info.get("name")!r}: {type(exc).__name__}: {exc}') from exc
    return model


def save_model(path: str, model_name: str, model, spec: ModelSpec, model_kwargs: dict[str, Any] | None = None,
               **extra: Any) -> None:
    """Write ``model`` (built by ``create_model(model_name, spec.num_classes, spec.channels, **model_kwargs)``)
    as a checkpoint of this format, ``spec`` stored with it; ``extra`` keys (epoch, metrics...) alongside.

    Raises:
        ValueError: a non-square spec (the format stores one input size) or an extra key of the format.
    """
    if spec.height != spec.width:
        raise ValueError(f'save_model: the checkpoint format needs a square input, spec has '
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
        raise ValueError(f'save_model: extra keys {sorted(clash)} collide with the format')
    payload.update(extra)
    save(payload, path)
