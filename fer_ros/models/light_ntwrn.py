"""Light-NTWRN and its Table 5 ablation variants (Ni, Zhang, Zhang, 2022).

One skeleton, four registered variants (RE, random erasing, is a data option, not a model):

==============  =========  =========  =========  ==========
name            stage 1    stage 2    stage 3    attention
==============  =========  =========  =========  ==========
wrn             wide       wide       wide       no
wrn_scam        wide       wide       wide       SCAM
wrn_scam_gbn    wide       gbn        wide       SCAM
light_ntwrn     ds         gbn        ds         SCAM
==============  =========  =========  =========  ==========

Skeleton (Table 1): stem conv3x3/16 at 48x48 -> stage 1 (96 ch, 48x48, 5 units) -> stage 2
(192 ch, 24x24, 8 units) -> stage 3 (384 ch, 12x12, 5 units) -> BN-ReLU -> global average pooling
-> linear classifier. Input float32[N, in_channels, H, W] (48x48 in the paper; any size >= 8 works
because of the global pooling), normalised as recorded in the checkpoint; output float32[N,
num_classes] logits (softmax is applied by the loss and appended by the ONNX export).
docs/model.md explains every choice the paper leaves open.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from fer_ros.models.blocks import BNReLU, DSBlock, GroupingBottleneck, WideBasicBlock
from fer_ros.models.registry import register_model

BLOCK_TYPES = ('wide', 'ds', 'gbn')


class LightNTWRN(nn.Module):
    """Wide residual network with optional DS-shuffle, grouping-bottleneck and SCAM units.

    Args:
        num_classes: output classes (7 for the paper's expressions).
        in_channels: 3 (RGB, the paper's 48x48x3; gray datasets are replicated) or 1.
        stem_channels: width of the first 3x3 convolution (Table 1: 16).
        widths: channels of the three stages (Table 1: 96, 192, 384).
        depths: residual units per stage (Table 1 "Repetition": 5, 8, 5).
        block_types: unit type per stage, each one of ``'wide'``, ``'ds'``, ``'gbn'``.
        attention: put a SCAM at the end of every unit's residual branch.
        drop_rate: dropout inside every unit (WRN places it between the convolutions).
        scam_rd_ratio: SCAM channel-MLP hidden width / channels.
        ds_multiplier: depthwise channel multiplier of the DS-shuffle convolutions, one int for
            every stage or one per stage (only DS stages use it).
        ds_groups: groups of the DS pointwise convolution (and of the channel shuffle).
        gbn_mid_ratio: GBN Conv-1 kernels / input channels (paper: one half).
    Raises:
        ValueError: a parameter is out of range; the message names it.
    """

    def __init__(self, num_classes: int = 7, in_channels: int = 3, stem_channels: int = 16,
                 widths: Sequence[int] = (96, 192, 384), depths: Sequence[int] = (5, 8, 5),
                 block_types: Sequence[str] = ('wide', 'wide', 'wide'), attention: bool = False,
                 drop_rate: float = 0.3, scam_rd_ratio: float = 1.0,
                 ds_multiplier: int | Sequence[int] = (1, 1, 6),
                 ds_groups: int = 2, gbn_mid_ratio: float = 0.5) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f'num_classes must be >= 2, got {num_classes}')
        if in_channels not in (1, 3):
            raise ValueError(f'in_channels must be 1 or 3, got {in_channels}')
        if stem_channels < 1:
            raise ValueError(f'stem_channels must be >= 1, got {stem_channels}')
        if not (len(widths) == len(depths) == len(block_types)) or not widths:
            raise ValueError(f'widths, depths and block_types need the same non-zero length, got '
                             f'{len(widths)}, {len(depths)}, {len(block_types)}')
        if any(w < 1 for w in widths):
            raise ValueError(f'widths must be >= 1, got {tuple(widths)}')
        if any(d < 1 for d in depths):
            raise ValueError(f'depths must be >= 1, got {tuple(depths)}')
        bad = [t for t in block_types if t not in BLOCK_TYPES]
        if bad:
            raise ValueError(f'block_types must be among {BLOCK_TYPES}, got {bad}')
        mults = ((ds_multiplier,) * len(widths) if isinstance(ds_multiplier, int)
                 else tuple(ds_multiplier))
        if len(mults) != len(widths) or any(m < 1 for m in mults):
            raise ValueError(f'ds_multiplier must be >= 1, one value or one per stage, got {ds_multiplier}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.num_features = widths[-1]

        self.stem = nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        in_ch = stem_channels
        for i, (width, depth, kind) in enumerate(zip(widths, depths, block_types)):
            units: list[nn.Module] = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                common: dict[str, Any] = dict(stride=stride, drop_rate=drop_rate, attention=attention,
                              rd_ratio=scam_rd_ratio)
                if kind == 'wide':
                    units.append(WideBasicBlock(in_ch, width, **common))
                elif kind == 'ds':
                    units.append(DSBlock(in_ch, width, multiplier=mults[i], groups=ds_groups,
                                         **common))
                else:
                    units.append(GroupingBottleneck(in_ch, width, mid_ratio=gbn_mid_ratio, **common))
                in_ch = width
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.final_act = BNReLU(in_ch)  # pre-activation nets end with BN-ReLU before pooling
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """float32[N, in_channels, H, W] -> float32[N, widths[-1], H/4, W/4] (after BN-ReLU)."""
        return self.final_act(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32[N, in_channels, H, W] -> logits float32[N, num_classes]."""
        return self.fc(torch.flatten(self.pool(self.forward_features(x)), 1))


def _build(block_types: tuple[str, str, str], attention: bool, num_classes: int, in_channels: int,
           **kwargs) -> LightNTWRN:
    kwargs.setdefault('block_types', block_types)
    kwargs.setdefault('attention', attention)
    return LightNTWRN(num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def wrn(num_classes: int = 7, in_channels: int = 3, **kwargs) -> LightNTWRN:
    """Table 5 row "WRN" (and "WRN+RE"): wide basic blocks in all stages, no attention."""
    return _build(('wide', 'wide', 'wide'), False, num_classes, in_channels, **kwargs)


@register_model
def wrn_scam(num_classes: int = 7, in_channels: int = 3, **kwargs) -> LightNTWRN:
    """Table 5 row "+SCAM": WRN with a SCAM at the end of every residual branch."""
    return _build(('wide', 'wide', 'wide'), True, num_classes, in_channels, **kwargs)


@register_model
def wrn_scam_gbn(num_classes: int = 7, in_channels: int = 3, **kwargs) -> LightNTWRN:
    """Table 5 row "+GBN": stage 2 made of grouping bottlenecks."""
    return _build(('wide', 'gbn', 'wide'), True, num_classes, in_channels, **kwargs)


@register_model
def light_ntwrn(num_classes: int = 7, in_channels: int = 3, **kwargs) -> LightNTWRN:
    """Light-NTWRN (Table 5 last row): DS-shuffle stages 1 and 3, GBN stage 2, SCAM everywhere."""
    return _build(('ds', 'gbn', 'ds'), True, num_classes, in_channels, **kwargs)
