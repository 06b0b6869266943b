"""Model registry (timm style): each architecture module registers its constructors by name."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under its function name; ``fn(num_classes, in_channels, **kw)``."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f'model {name!r} is already registered')
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 7, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build a registered model.

    Raises:
        ValueError: unknown ``name`` (the message lists the registered ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f'unknown model {name!r}; registered: {list_models()}')
    return _REGISTRY[name](num_classes=num_classes, in_channels=in_channels, **kwargs)
