"""Online bootstrapping (OHEM) cross-entropy, as in the paper's fine-tuning recipe, optionally
class-weighted for the thin classes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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


class DistillationLoss(nn.Module):
    """(1 - α)·`hard`(logits, target) + α·T²·KL(teacher ‖ student) at temperature T, the KL
    averaged over labelled pixels (Hinton et al. 2015; per pixel as in structured KD for
    segmentation). The teacher's soft labels carry what ImageNet taught it: which wrong
    classes are near, where a thin object's edge lies."""

    def __init__(self, hard: nn.Module, ignore_index: int, alpha: float = 0.5,
                 temperature: float = 2.0) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0 or temperature <= 0:
            raise ValueError(f"distillation weight must be in [0, 1] and temperature > 0, got "
                             f"{alpha} and {temperature}")
        self.hard, self.ignore_index = hard, ignore_index
        self.alpha, self.temperature = alpha, temperature

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        kl = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                      reduction="none", log_target=True).sum(1)  # per pixel
        valid = target != self.ignore_index
        soft = (kl * valid).sum() / valid.sum().clamp(min=1) * t * t
        return (1 - self.alpha) * self.hard(logits, target) + self.alpha * soft


class DeeplySupervised(nn.Module):
    """An LGCNet with 1x1 auxiliary classifiers on the fusion cell's stride-8 and stride-16
    inputs, for training only: forward returns (logits, [aux logits at 8, at 16]). The heads
    give the deeper features (a trunk's, or the cells') a gradient of their own; the shipped
    network is `net`, without them."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        if not hasattr(net, "fusion"):
            raise ValueError(f"auxiliary heads read an LGCNet's fusion inputs; "
                             f"{type(net).__name__} has no fusion cell")
        self.net = net
        self.heads = nn.ModuleList(nn.Conv2d(reduce[0].in_channels, num_classes, 1)
                                   for reduce in net.fusion.reduce[1:])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        seen: list[torch.Tensor] = []
        hook = self.net.fusion.register_forward_pre_hook(lambda m, args: seen.extend(args[0][1:]))
        try:
            logits = self.net(x)
        finally:
            hook.remove()
        return logits, [head(f) for head, f in zip(self.heads, seen)]
