"""Building blocks of Light-NTWRN and its ablation variants (Ni, Zhang, Zhang, 2022).

All blocks take and return ``float32[N, C, H, W]`` (NCHW) feature maps. The residual units use
the pre-activation order of the original wide residual network (Zagoruyko & Komodakis 2016):
``BN -> ReLU -> conv``, so every convolution of the network is followed by BN + ReLU (inside the
unit, by the next unit's pre-activation, or by the network's final BN + ReLU), as the paper's
Table 1 states. docs/model.md gives the equations and the reasons for each choice.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle: interleave the channels of ``groups`` equal groups.

    Channel ``g * (C // groups) + i`` of the input becomes channel ``i * groups + g`` of the
    output, so a following grouped convolution sees channels from every previous group.

    Args:
        x: float[N, C, H, W]; ``C`` must be divisible by ``groups``.
        groups: number of groups (>= 1; 1 returns ``x`` unchanged).
    Returns:
        float[N, C, H, W], a permutation of ``x`` along the channel axis.
    Raises:
        ValueError: ``groups`` < 1 or does not divide the channel count.
    """
    n, c, h, w = x.shape
    # while tracing (ONNX export) shapes are tensors; ChannelShuffle users checked them at build time
    if not torch.jit.is_tracing() and (groups < 1 or c % groups):
        raise ValueError(f'channel_shuffle: groups={groups} must be >= 1 and divide channels={c}')
    if groups == 1:
        return x
    return x.view(n, groups, -1, h, w).transpose(1, 2).reshape(n, -1, h, w)


class ChannelShuffle(nn.Module):
    """Module form of :func:`channel_shuffle` (so it shows in ``print(model)`` and exports)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f'ChannelShuffle: groups must be >= 1, got {groups}')
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f'groups={self.groups}'


class BNReLU(nn.Sequential):
    """BatchNorm2d followed by ReLU: the paper's "BN+ReLU" after every convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class SpatialAttention(nn.Module):
    """Ms(F) = sigmoid(f7x7([AvgPool_c(F); MaxPool_c(F)])), pooled over the channel axis (eq. 13).

    Returns the gated map ``Ms(F) * F`` (eq. 14), float[N, C, H, W].
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'SpatialAttention: kernel_size must be odd and >= 1, got {kernel_size}')
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """float[N, 1, H, W] in (0, 1)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class ChannelAttention(nn.Module):
    """Mc(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))), one shared MLP (eq. 15).

    The MLP is ``C -> round(C * rd_ratio) -> C`` (1x1 convolutions with bias, ReLU between).
    Returns the gated map ``Mc(F) * F`` (eq. 16), float[N, C, H, W].
    """

    def __init__(self, channels: int, rd_ratio: float = 1.0) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f'ChannelAttention: channels must be >= 1, got {channels}')
        if rd_ratio <= 0:
            raise ValueError(f'ChannelAttention: rd_ratio must be > 0, got {rd_ratio}')
        hidden = max(1, round(channels * rd_ratio))
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """float[N, C, 1, 1] in (0, 1)."""
        avg = self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        mx = self.fc2(self.act(self.fc1(F.adaptive_max_pool2d(x, 1))))
        return torch.sigmoid(avg + mx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class SCAM(nn.Module):
    """Spatial-then-channel attention module (paper Sec. 3.6, eq. 13-16).

    ``F' = Ms(F) * F`` then ``F'' = Mc(F') * F'`` (the reverse of CBAM's channel-first order).
    Input and output: float[N, C, H, W].
    """

    def __init__(self, channels: int, rd_ratio: float = 1.0, kernel_size: int = 7) -> None:
        super().__init__()
        self.spatial = SpatialAttention(kernel_size)
        self.channel = ChannelAttention(channels, rd_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel(self.spatial(x))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    """1x1 projection when the shape changes (WRN's choice), else identity (None)."""
    if in_ch == out_ch and stride == 1:
        return None
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


def _check_common(name: str, in_ch: int, out_ch: int, stride: int, drop_rate: float) -> None:
    if in_ch < 1 or out_ch < 1:
        raise ValueError(f'{name}: in_ch and out_ch must be >= 1, got {in_ch}, {out_ch}')
    if stride not in (1, 2):
        raise ValueError(f'{name}: stride must be 1 or 2, got {stride}')
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f'{name}: drop_rate must be in [0, 1), got {drop_rate}')


class _ResidualUnit(nn.Module):
    """``out = attn(branch(x)) + shortcut(x)`` with a pre-activation shared by both paths.

    Subclasses build ``self.branch`` (starting after the pre-activation). When the shortcut is a
    projection it takes the pre-activated input, as in the reference WRN code.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, attention: bool, rd_ratio: float) -> None:
        super().__init__()
        self.preact = BNReLU(in_ch)
        self.shortcut = _shortcut(in_ch, out_ch, stride)
        self.attn = SCAM(out_ch, rd_ratio) if attention else nn.Identity()
        self.branch: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.preact(x)
        skip = x if self.shortcut is None else self.shortcut(o)
        return self.attn(self.branch(o)) + skip


class WideBasicBlock(_ResidualUnit):
    """WRN basic block B(3,3): ``BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3`` (+ SCAM) + shortcut.

    Params (no attention, no projection): ``9*in*out + 9*out*out`` conv weights plus BN.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, drop_rate: float = 0.0,
                 attention: bool = False, rd_ratio: float = 1.0) -> None:
        _check_common('WideBasicBlock', in_ch, out_ch, stride, drop_rate)
        super().__init__(in_ch, out_ch, stride, attention, rd_ratio)
        self.branch = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            BNReLU(out_ch),
            nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        )


class DSShuffleConv(nn.Sequential):
    """Depthwise separable convolution with a channel shuffle (paper Sec. 3.5).

    ``dw3x3 (in_ch -> in_ch*multiplier, groups=in_ch, stride) -> BN-ReLU -> channel_shuffle(groups)
    -> pointwise 1x1 (in_ch*multiplier -> out_ch, groups=groups)``.

    The depthwise step may widen the channels (``multiplier``); the pointwise step is a grouped
    1x1 convolution whose groups see every depthwise group thanks to the preceding shuffle (the
    ShuffleNet pairing of shuffle and grouped pointwise convolution). ``groups=1`` gives a plain
    depthwise separable convolution (the shuffle is then the identity).

    Params: ``9*in_ch*multiplier + in_ch*multiplier*out_ch/groups`` (+ BN).
    Input float[N, in_ch, H, W] -> float[N, out_ch, H/stride, W/stride].
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, multiplier: int = 1,
                 groups: int = 1) -> None:
        _check_common('DSShuffleConv', in_ch, out_ch, stride, 0.0)
        if multiplier < 1:
            raise ValueError(f'DSShuffleConv: multiplier must be >= 1, got {multiplier}')
        mid = in_ch * multiplier
        if groups < 1 or mid % groups or out_ch % groups:
            raise ValueError(f'DSShuffleConv: groups={groups} must divide in_ch*multiplier={mid} '
                             f'and out_ch={out_ch}')
        super().__init__(
            nn.Conv2d(in_ch, mid, 3, stride=stride, padding=1, groups=in_ch, bias=False),
            BNReLU(mid),
            ChannelShuffle(groups),
            nn.Conv2d(mid, out_ch, 1, groups=groups, bias=False),
        )


class DSBlock(_ResidualUnit):
    """Light-NTWRN feature unit DS-1..3 (or DS-4..6): three DS-shuffle convolutions.

    ``BN-ReLU-DS(stride)-BN-ReLU-DS-BN-ReLU-dropout-DS`` (+ SCAM) + shortcut; the first DS changes
    the channel count and carries the stride.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, drop_rate: float = 0.0,
                 attention: bool = False, rd_ratio: float = 1.0, multiplier: int = 1,
                 groups: int = 1, num_convs: int = 3) -> None:
        _check_common('DSBlock', in_ch, out_ch, stride, drop_rate)
        if num_convs < 1:
            raise ValueError(f'DSBlock: num_convs must be >= 1, got {num_convs}')
        super().__init__(in_ch, out_ch, stride, attention, rd_ratio)
        layers: list[nn.Module] = []
        for i in range(num_convs):
            if i:
                layers.append(BNReLU(out_ch))
            if i == num_convs - 1 and drop_rate > 0:
                layers.append(nn.Dropout(drop_rate))
            layers.append(DSShuffleConv(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1,
                                        multiplier, groups))
        self.branch = nn.Sequential(*layers)


class GroupingBottleneck(_ResidualUnit):
    """Grouping bottleneck GBN (paper Sec. 3.4): Conv-1 1x1 -> GConv-1 3x3 -> Conv-2 1x1.

    ``BN-ReLU-conv1x1 (in_ch -> mid) -BN-ReLU- gconv3x3 (mid, groups=mid, stride) -BN-ReLU-dropout-
    conv1x1 (mid -> out_ch)`` (+ SCAM), summed element-wise with the input (projected when the
    shape changes). ``mid = round(in_ch * mid_ratio)``; the paper's "half the input channels' worth
    of kernels" is ``mid_ratio=0.5``.

    Params: ``in_ch*mid + 9*mid + mid*out_ch`` (+ BN, + projection).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, drop_rate: float = 0.0,
                 attention: bool = False, rd_ratio: float = 1.0, mid_ratio: float = 0.5) -> None:
        _check_common('GroupingBottleneck', in_ch, out_ch, stride, drop_rate)
        if mid_ratio <= 0:
            raise ValueError(f'GroupingBottleneck: mid_ratio must be > 0, got {mid_ratio}')
        super().__init__(in_ch, out_ch, stride, attention, rd_ratio)
        mid = max(1, round(in_ch * mid_ratio))
        self.branch = nn.Sequential(
            nn.Conv2d(in_ch, mid, 1, bias=False),
            BNReLU(mid),
            nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False),
            BNReLU(mid),
            nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity(),
            nn.Conv2d(mid, out_ch, 1, bias=False),
        )
