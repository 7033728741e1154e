"""The one op table: every candidate op of Tables II and III, keyed by the names in `space`.

Factories take (C_in, C_out, stride). Every BatchNorm directly follows its conv inside an
`nn.Sequential`, which is what `fuse.fold_batchnorm` relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lgcnet_deploy.model.space import CELL_OPS, FUSION_OPS, UP_OPS


def conv_bn_relu(c_in: int, c_out: int, k: int, stride: int = 1, dilation: int = 1,
                 relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, k, stride, padding=dilation * (k - 1) // 2, dilation=dilation,
                  bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


def sep_conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 depthwise (optionally dilated) then 1x1 pointwise, BN, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride, padding=dilation, dilation=dilation, groups=c_in,
                  bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=False),
    )


def conv_bn_relu6(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
                  relu6: bool = True) -> nn.Sequential:
    """Conv, BN with TF's epsilon (what ImageNet-trained EfficientNet-Lite weights expect),
    ReLU6 unless `relu6` is False."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups,
                                         bias=False), nn.BatchNorm2d(c_out, eps=1e-3)]
    if relu6:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """EfficientNet-Lite's inverted residual (no squeeze-excitation, ReLU6): 1x1 expand,
    kxk depthwise, 1x1 project; residual when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = conv_bn_relu6(c_in, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn_relu6(mid, mid, kernel, stride, groups=mid)
        self.project = conv_bn_relu6(mid, c_out, 1, relu6=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


def mbconv_stages(stages: Sequence[tuple[int, int, int, int, int, int]]) -> nn.ModuleList:
    """The MBConv blocks of EfficientNet-Lite's stage table (`space.LITE0_STAGES` rows:
    repeats, kernel, stride, expand, in, out), one module per block."""
    return nn.ModuleList(
        MBConv(c_in if r == 0 else c_out, c_out, kernel, stride if r == 0 else 1, expand)
        for repeats, kernel, stride, expand, c_in, c_out in stages for r in range(repeats))


def stage_ends(stages: Sequence[tuple[int, ...]]) -> list[int]:
    """The index of each stage's last block in `mbconv_stages(stages)`."""
    return [sum(s[0] for s in stages[:i + 1]) - 1 for i in range(len(stages))]


def mbconv_stem(widths: tuple[int, int, int]) -> nn.Sequential:
    """EfficientNet-Lite0's first layers to stride 4: a 3x3 stride-2 conv (c1), an MBConv
    (c2), two MBConvs with expansion 6 (c3, the first stride 2). With widths (32, 16, 24)
    they take ImageNet weights (`lgcnet_research.train.pretrained`)."""
    c1, c2, c3 = widths
    return nn.Sequential(conv_bn_relu6(3, c1, 3, 2), MBConv(c1, c2, 3, 1, 1),
                         MBConv(c2, c3, 3, 2, 6), MBConv(c3, c3, 3, 1, 6))


class Zero(nn.Module):
    """The zero op: contributes nothing (output has the strided shape)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride] * 0.0


class GlobalPoolConv(nn.Module):
    """Pool to a (grid x grid) map, 1x1 conv + BN + ReLU, bilinear back to the input size.

    A 5x5 grid on sizes not divisible by 5 uses an average pool with kernel ceil(H/5)
    (ceil mode), which exports to every ONNX backend unlike an adaptive pool.
    """

    def __init__(self, c_in: int, c_out: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.proj = conv_bn_relu(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.grid == 1:
            y = x.mean(dim=(2, 3), keepdim=True)
        else:
            kh, kw = -(-int(h) // self.grid), -(-int(w) // self.grid)
            y = F.avg_pool2d(x, (kh, kw), (kh, kw), ceil_mode=True, count_include_pad=False)
        return F.interpolate(self.proj(y), size=(h, w), mode="bilinear", align_corners=False)


class Deconv(nn.Module):
    """Up x2 by a 2x2 stride-2 transposed conv + BN + ReLU, cropped to the target size."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(c, c, 2, 2, bias=False), nn.BatchNorm2d(c),
                                nn.ReLU(inplace=False))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.up(x)[:, :, :size[0], :size[1]]


class Interp(nn.Module):
    """Up x2 by bilinear interpolation to the target size (odd sizes align exactly)."""

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _skip(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return conv_bn_relu(c_in, c_out, 1, stride, relu=False)  # a reducing skip


Factory = Callable[[int, int, int], nn.Module]

OPS: dict[str, Factory] = {
    "none": lambda ci, co, s: Zero(s),
    "skip_connect": _skip,
    "max_pool_3x3": lambda ci, co, s: nn.MaxPool2d(3, s, padding=1),
    "conv_1x1": lambda ci, co, s: conv_bn_relu(ci, co, 1, s),
    "conv_3x3": lambda ci, co, s: conv_bn_relu(ci, co, 3, s),
    "sep_conv_3x3": lambda ci, co, s: sep_conv(ci, co, s),
    "dil_sep_conv_3x3_d2": lambda ci, co, s: sep_conv(ci, co, s, 2),
    "dil_sep_conv_3x3_d4": lambda ci, co, s: sep_conv(ci, co, s, 4),
    "dil_sep_conv_3x3_d8": lambda ci, co, s: sep_conv(ci, co, s, 8),
    "dil_sep_conv_3x3_d12": lambda ci, co, s: sep_conv(ci, co, s, 12),
    "global_pool_1x1": lambda ci, co, s: GlobalPoolConv(ci, co, 1),
    "global_pool_5x5": lambda ci, co, s: GlobalPoolConv(ci, co, 5),
    "deconv": lambda ci, co, s: Deconv(co),
    "interp": lambda ci, co, s: Interp(),
}

assert set(OPS) == set(CELL_OPS) | set(FUSION_OPS) | set(UP_OPS), "op table out of sync with space"


def build_op(name: str, c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    """Build the op `name` mapping c_in -> c_out channels at the given stride."""
    try:
        factory = OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; the op table has {', '.join(sorted(OPS))}") from None
    return factory(c_in, c_out, stride)
