"""Online bootstrapping (OHEM) cross-entropy, as in the paper's fine-tuning recipe, optionally
class-weighted for the thin classes."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from lgcnet_deploy.model.ops import conv_bn_relu
from lgcnet_research.train.config import DISTILL_KINDS

DETAIL_CHANNELS = 32  # the detail head's hidden width (STDC's is 64, on wider features)
# the Lovász-softmax loss sorts every pixel once per class: for 8 crops of 256x320 on a 2-core
# CPU that took longer than the rest of the training step; every second row and column of the
# crop keeps each class's pixels in proportion (labels unresampled, thin objects included) and
# sorts a quarter as many
LOVASZ_STRIDE = 2


class OhemCrossEntropy(nn.Module):
    """Cross-entropy over the hard pixels only: those whose true-class probability is below
    `thresh`, and at least `min_kept` of them per batch (the hardest first). Void is ignored.
    With `weight` (one per class) the kept pixels' losses are averaged with their class's
    weight; which pixels are hard is decided on the unweighted loss, so the weights change
    how much a hard pixel counts, not which pixels are hard.

    Written without data-dependent shapes or `.item()`, so a GPU step never waits for the host:
    both candidate means are computed and `torch.where` picks one.
    """

    def __init__(self, ignore_index: int, thresh: float = 0.7, min_kept: int = 100_000,
                 weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.ignore_index, self.thresh, self.min_kept = ignore_index, thresh, min_kept
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pixel_loss = F.cross_entropy(logits, target, ignore_index=self.ignore_index,
                                     reduction="none").flatten()  # 0 on void
        valid = target.flatten() != self.ignore_index
        hard = valid & (pixel_loss > -math.log(self.thresh))  # p_true < thresh
        n_hard = hard.sum()
        k = valid.sum().clamp(max=self.min_kept)  # at least this many pixels count
        top = torch.where(valid, pixel_loss, -1.0).topk(min(self.min_kept,
                                                             pixel_loss.numel())).values
        if self.weight is None:
            in_top_k = torch.arange(top.numel(), device=top.device) < k
            hardest_k = (top * in_top_k).sum() / k.clamp(min=1)
            hard_mean = (pixel_loss * hard).sum() / n_hard.clamp(min=1)
            return torch.where(n_hard < k, hardest_k, hard_mean)  # 0 (with a graph) if all void
        w = self.weight[target.flatten().clamp(0, len(self.weight) - 1)] * valid
        kth = top[(k - 1).clamp(min=0)]  # the k-th hardest loss: hardest_k's cut
        keep = torch.where(n_hard < k, valid & (pixel_loss >= kth), hard)
        return (pixel_loss * w * keep).sum() / (w * keep).sum().clamp(min=1e-12)


def pixel_kl(logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             ignore_index: int, t: float) -> torch.Tensor:
    """KL(teacher ‖ student) between the class distributions at temperature `t` of every
    pixel, averaged over the labelled pixels (Hinton et al. 2015, per pixel as in structured
    KD for segmentation)."""
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                  reduction="none", log_target=True).sum(1)  # per pixel
    valid = target != ignore_index
    return (kl * valid).sum() / valid.sum().clamp(min=1)


def channel_kl(logits: torch.Tensor, teacher_logits: torch.Tensor, labelled: torch.Tensor,
               t: float) -> torch.Tensor:
    """Channel-wise distillation (Shu et al., "Channel-wise Knowledge Distillation for Dense
    Prediction", ICCV 2021): per sample and class channel, a softmax over the positions of
    logits / `t`; KL(teacher ‖ student) summed over the positions, averaged over channels
    and samples. Each class's map becomes a distribution of where the teacher sees it, so the
    student learns the most salient regions of each class rather than every pixel alike.

    The positions are the `labelled` ones (N, H, W), not all of them as in the paper: a crop
    that reaches past its frame is padded, void there, and the warped cached targets
    stretch the frame's border values over that padding, so a softmax over every position
    would ask the student to put road on black pixels. CamVid's own void (a few percent of
    pixels) drops out with it. Computed in fp32: a softmax over ~10⁵ positions in bf16 leaves
    log-probabilities with errors of a few hundredths. The KL of two spatial distributions
    hardly depends on the grid they are sampled on, so it weighs the same on a crop and on a
    whole frame."""
    n, c = logits.shape[:2]
    outside = ~labelled.flatten(1)[:, None, :]  # (N, 1, H·W), the same for every channel

    def spatial(x: torch.Tensor) -> torch.Tensor:  # finite fill: no inf - inf, no NaN grads
        return F.log_softmax((x.float().flatten(2) / t).masked_fill(outside, -1e9), -1)

    student, teacher = spatial(logits), spatial(teacher_logits)
    kl = torch.where(outside, 0.0, teacher.exp() * (teacher - student))
    return kl.sum() / (n * c)


class DistillationLoss(nn.Module):
    """(1 - α)·`hard`(logits, target) + α·T²·KL(teacher ‖ student) at temperature T: per
    pixel over the labelled pixels (`kind` "pixel": `pixel_kl`), or per class channel over
    the labelled positions (`kind` "channel": `channel_kl`). The teacher's soft labels carry what
    ImageNet taught it: which wrong classes are near, where a thin object's edge lies.

    The teacher's logits come at the student's resolution, the crop's: both nets upsample
    their logits to their input, and cached targets (stored at a fraction of the frame) are
    upsampled onto the crop's pixel grid by the warp (`data.warp_targets`). Both kinds compare
    them there, neither resampled again: the warp already interpolated the cached side once,
    and a coarser common grid would save little (one softmax per map) while blurring thin
    objects out of both."""

    def __init__(self, hard: nn.Module, ignore_index: int, alpha: float = 0.5,
                 temperature: float = 2.0, kind: str = "pixel") -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0 or temperature <= 0:
            raise ValueError(f"distillation weight must be in [0, 1] and temperature > 0, got "
                             f"{alpha} and {temperature}")
        if kind not in DISTILL_KINDS:
            raise ValueError(f"distillation kind {kind!r}: choose one of "
                             f"{', '.join(DISTILL_KINDS)}")
        self.hard, self.ignore_index = hard, ignore_index
        self.alpha, self.temperature, self.kind = alpha, temperature, kind

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        t, teacher_logits = self.temperature, teacher_logits.detach()  # only the student learns
        if teacher_logits.shape != logits.shape:
            raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} and student "
                             f"logits {tuple(logits.shape)} differ: give the teacher's at the "
                             f"student's resolution")
        if self.kind == "channel":
            kl = channel_kl(logits, teacher_logits, target != self.ignore_index, t)
        else:
            kl = pixel_kl(logits, teacher_logits, target, self.ignore_index, t)
        return (1 - self.alpha) * self.hard(logits, target) + self.alpha * (kl * t * t)


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                   stride: int = LOVASZ_STRIDE) -> torch.Tensor:
    """The Lovász-softmax loss (Berman et al., CVPR 2018): a convex surrogate of 1 − IoU per
    class, from the batch's pixels taken together (every `stride`-th row and column),
    averaged over the classes present in `target`. Cross-entropy counts pixels, so a thin
    class's few pixels weigh little in it; this loss counts each class's IoU, the quantity
    mIoU averages, whatever its size.

    Vectorised over the classes (one sort of the (pixels, classes) error matrix), without
    data-dependent shapes: void pixels get error 0, which sorts them last and adds nothing,
    as if they were left out."""
    logits, target = logits[..., ::stride, ::stride], target[..., ::stride, ::stride]
    probs = logits.float().softmax(1).movedim(1, -1).reshape(-1, logits.shape[1])
    labels = target.reshape(-1)
    valid = (labels != ignore_index).unsqueeze(1)
    fg = F.one_hot(labels.clamp(0, logits.shape[1] - 1), logits.shape[1]).float() * valid
    errors, order = ((fg - probs).abs() * valid).sort(0, descending=True)
    fg_sorted = fg.gather(0, order)
    total = fg_sorted.sum(0)
    jaccard = 1 - (total - fg_sorted.cumsum(0)) / (total + (1 - fg_sorted).cumsum(0))
    grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])  # the extension's weights
    per_class, present = (errors * grad).sum(0), total > 0
    return (per_class * present).sum() / present.sum().clamp(min=1)


def detail_target(labels: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The detail ground truth of detail guidance (STDC, Fan et al., CVPR 2021) from a batch of
    label maps (N, H, W): (target, valid), both (N, 1, H, W) floats. target is 1 where a
    pixel's 3x3 neighbourhood holds another class (both sides of every boundary, two pixels
    wide: STDC's Laplacian maps at strides 1 and 2, without their sign and scale); valid is 0
    where the neighbourhood holds void, whose boundaries are not known."""
    y = labels.unsqueeze(1).float()
    high, low = F.max_pool2d(y, 3, 1, 1), -F.max_pool2d(-y, 3, 1, 1)
    void = F.max_pool2d((y == ignore_index).float(), 3, 1, 1)
    return (high != low).float(), 1.0 - void


class DetailLoss(nn.Module):
    """Binary cross-entropy plus Dice between a detail head's logits (any stride: upsampled to
    the labels') and `detail_target`, over the valid pixels; no data-dependent shapes."""

    def __init__(self, ignore_index: int) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target, valid = detail_target(labels, self.ignore_index)
        logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear",
                               align_corners=False)
        bce = F.binary_cross_entropy_with_logits(logits, target, weight=valid, reduction="sum")
        bce = bce / valid.sum().clamp(min=1.0)
        p, t = torch.sigmoid(logits) * valid, target * valid
        dice = 1 - (2 * (p * t).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + t.sum((1, 2, 3)) + 1)
        return bce + dice.mean()


class Supervised(NamedTuple):
    """What `DeeplySupervised` returns: the net's logits, the auxiliary logits at strides 8
    and 16 ([] without auxiliary heads) and the detail head's logits (None without one)."""

    logits: torch.Tensor
    aux: list[torch.Tensor]
    detail: torch.Tensor | None


class DeeplySupervised(nn.Module):
    """An LGCNet with heads for training only: 1x1 auxiliary classifiers on the fusion cell's
    stride-8 and stride-16 inputs (`aux`), and a detail head on its stride-4 input (`detail`:
    STDC's detail guidance, a 3x3 conv-BN-ReLU and a 1x1 conv to one boundary logit). The
    classifiers give the deeper features (a trunk's, or the cells') a gradient of their own;
    the detail head asks the finest features, which the fusion cell's detail edge reads, to
    hold the label's boundaries. The shipped network is `net`, without them."""

    def __init__(self, net: nn.Module, num_classes: int, aux: bool = True,
                 detail: bool = False) -> None:
        super().__init__()
        if not hasattr(net, "fusion"):
            raise ValueError(f"auxiliary heads read an LGCNet's fusion inputs; "
                             f"{type(net).__name__} has no fusion cell")
        self.net = net
        reduce = net.fusion.reduce
        self.heads = nn.ModuleList(nn.Conv2d(r[0].in_channels, num_classes, 1)
                                   for r in (reduce[1:] if aux else []))
        self.detail = nn.Sequential(conv_bn_relu(reduce[0][0].in_channels, DETAIL_CHANNELS, 3),
                                    nn.Conv2d(DETAIL_CHANNELS, 1, 1)) if detail else None

    def forward(self, x: torch.Tensor) -> Supervised:
        seen: list[torch.Tensor] = []
        hook = self.net.fusion.register_forward_pre_hook(lambda m, args: seen.extend(args[0]))
        try:
            logits = self.net(x)
        finally:
            hook.remove()
        return Supervised(logits, [head(f) for head, f in zip(self.heads, seen[1:])],
                          None if self.detail is None else self.detail(seen[0]))
