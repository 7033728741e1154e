"""The teacher: EfficientNet-Lite with ImageNet weights and a light segmentation head.

ImageNet pretraining was the paper's; the backbone is built from the op table's `MBConv` and
takes EfficientNet-Lite0's, Lite1's or Lite2's ImageNet weights through
`lgcnet_research.train.pretrained` (models `effnet_lite0_seg`, `effnet_lite1_seg` and
`effnet_lite2_seg`: `TEACHERS`; a variant's stage table is `pretrained.lite_stages`). The head is
LR-ASPP-like (a gated stride-32 branch added to a stride-8 projection) with a stride-4 path for
the thin classes (pole, sign). It is a research model: it teaches LGCNet
(`TrainConfig.teacher`) and is never shipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lgcnet_deploy.model.ops import conv_bn_relu, conv_bn_relu6, mbconv_stages, stage_ends
from lgcnet_deploy.model.space import LITE0_STAGES
from lgcnet_research.train.pretrained import (
    VARIANTS,
    PretrainedWeightsError,
    imagenet_weights,
    lite_stages,
    lite_state,
    load_into,
)

TEACHERS: dict[str, str] = {f"effnet_{v}_seg": v for v in VARIANTS}  # model name -> variant


class EfficientNetLiteSeg(nn.Module):
    """EfficientNet-Lite backbone (features at strides 4, 8, 32) and a segmentation head;
    takes the project's normalised RGB input and returns logits at input size."""

    def __init__(self, num_classes: int,
                 stages: Sequence[tuple[int, ...]] = LITE0_STAGES) -> None:
        super().__init__()
        self.stem = conv_bn_relu6(3, stages[0][4], 3, 2)
        self.blocks = mbconv_stages(stages)
        # the last block of each stride: 4 -> after stage 2, 8 -> stage 3, 32 -> the last
        ends = stage_ends(stages)
        self.taps = {ends[1]: "s4", ends[2]: "s8", ends[-1]: "s32"}
        c4, c8, c32 = stages[1][5], stages[2][5], stages[-1][5]
        self.high = conv_bn_relu(c32, 128, 1)
        self.gate = nn.Conv2d(c32, 128, 1)
        self.mid = conv_bn_relu(c8, 128, 1)
        self.fuse8 = conv_bn_relu(128, 64, 3)
        self.low = conv_bn_relu(c4, 32, 1)
        self.fuse4 = conv_bn_relu(96, 64, 3)
        self.classifier = nn.Conv2d(64, num_classes, 1)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        out = {}
        for i, block in enumerate(self.blocks):
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


def teacher_net(num_classes: int, pretrained: bool = True,
                variant: str = "lite0") -> EfficientNetLiteSeg:
    """The teacher on EfficientNet-Lite `variant`, its backbone from ImageNet unless
    `pretrained` is False (tests)."""
    net = EfficientNetLiteSeg(num_classes, lite_stages(variant))
    if pretrained:
        weights = imagenet_weights(variant)
        state = lite_state(weights, "stem", [f"blocks.{i}" for i in range(len(net.blocks))])
        if len(state) != len(weights):  # the stage table builds fewer blocks than Lite has
            raise PretrainedWeightsError(
                f"{variant}'s ImageNet weights hold {len(weights) - len(state)} tensors that "
                f"the teacher's {len(net.blocks)} blocks (lite_stages) leave unused")
        load_into(net, state, ("stem.", "blocks."))
    return net

