"""Parameter and multiply-accumulate (MAC) counts of a PyTorch model.

MACs come from torch's own FLOP counter (``torch.utils.flop_counter.FlopCounterMode``) on one real
forward pass, so strides, padding and groups are whatever the model really does. It counts the
convolutions and matrix products (Conv2d, Linear, any matmul) and nothing else - the rule most
papers and thop/ptflops use; on every registered model it gives exactly the Conv2d + Linear counts
of the forward hooks this module used before (checked for 1/3 channels at 48 and 64 px). One MAC is
one multiply plus one add; ``flops = 2 * macs``. BatchNorm, activations, pooling, attention gating and
additions are not counted (a few percent of the convolution work here). Papers that print "FLOPs"
often mean MACs; this module always names which one it returns.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class Complexity:
    """Counts for one input size.

    params: all parameters (trainable or not), BN affine included, BN running stats excluded.
    trainable_params: parameters with ``requires_grad``.
    macs: Conv2d + Linear multiply-accumulates for ONE image of ``input_size``.
    input_size: (C, H, W) the counts refer to.
    """

    params: int
    trainable_params: int
    macs: int
    input_size: tuple[int, int, int]

    @property
    def flops(self) -> int:
        """2 * MACs (one multiply and one add per MAC)."""
        return 2 * self.macs


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (BN running statistics are buffers and not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Convolution + matrix-product MACs for one image of shape ``input_size`` = (C, H, W).

    Runs one forward pass on zeros (batch 1) in eval mode on the model's device; the model's
    training/eval mode is restored afterwards.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if len(input_size) != 3 or min(input_size) < 1:
        raise ValueError(f'input_size must be (C, H, W) with positive sizes, got {input_size}')
    was_training = model.training
    counter = FlopCounterMode(display=False)
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        model.eval()
        with torch.no_grad(), counter:
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def complexity(model: nn.Module, input_size: tuple[int, int, int] = (3, 48, 48)) -> Complexity:
    """Parameters and MACs of ``model`` for one image of ``input_size`` = (C, H, W)."""
    return Complexity(params=count_params(model), trainable_params=count_params(model, True),
                      macs=count_macs(model, input_size), input_size=(input_size[0], input_size[1], input_size[2]))


def format_count(n: float) -> str:
    """Human form: 10140000 -> '10.14 M', 1.2e9 -> '1.20 G'."""
    for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(n) >= scale:
            return f'{n / scale:.2f} {unit}'
    return f'{n:.0f}'
