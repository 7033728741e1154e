"""Online bootstrapping (OHEM) cross-entropy, as in the paper's fine-tuning recipe."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class OhemCrossEntropy(nn.Module):
    """Cross-entropy over the hard pixels only: those whose true-class probability is below
    `thresh`, and at least `min_kept` of them per batch (the hardest first). Void is ignored.

    Written without data-dependent shapes or `.item()`, so a GPU step never waits for the host:
    both candidate means are computed and `torch.where` picks one.
    """

    def __init__(self, ignore_index: int, thresh: float = 0.7, min_kept: int = 100_000) -> None:
        super().__init__()
        self.ignore_index, self.thresh, self.min_kept = ignore_index, thresh, min_kept

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pixel_loss = F.cross_entropy(logits, target, ignore_index=self.ignore_index,
                                     reduction="none").flatten()  # 0 on void
        valid = target.flatten() != self.ignore_index
        hard = valid & (pixel_loss > -math.log(self.thresh))  # p_true < thresh
        n_hard = hard.sum()
        k = valid.sum().clamp(max=self.min_kept)  # at least this many pixels count
        top = torch.where(valid, pixel_loss, -1.0).topk(min(self.min_kept,
                                                             pixel_loss.numel())).values
        in_top_k = torch.arange(top.numel(), device=top.device) < k
        hardest_k = (top * in_top_k).sum() / k.clamp(min=1)
        hard_mean = (pixel_loss * hard).sum() / n_hard.clamp(min=1)
        return torch.where(n_hard < k, hardest_k, hard_mean)  # 0 (with a graph) if all void
