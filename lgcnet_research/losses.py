"""Online bootstrapping (OHEM) cross-entropy, as in the paper's fine-tuning recipe."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OhemCrossEntropy(nn.Module):
    """Cross-entropy over the hard pixels only: those whose true-class probability is below
    `thresh`, and at least `min_kept` of them per batch (the hardest first). Void is ignored.
    """

    def __init__(self, ignore_index: int, thresh: float = 0.7, min_kept: int = 100_000) -> None:
        super().__init__()
        self.ignore_index, self.thresh, self.min_kept = ignore_index, thresh, min_kept

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pixel_loss = F.cross_entropy(logits, target, ignore_index=self.ignore_index,
                                     reduction="none").flatten()
        valid = target.flatten() != self.ignore_index
        losses = pixel_loss[valid]
        if losses.numel() == 0:
            return logits.sum() * 0.0
        # p_true < thresh  <=>  loss > -log(thresh)
        hard = losses > -torch.log(torch.tensor(self.thresh))
        k = min(self.min_kept, losses.numel())
        if int(hard.sum()) < k:
            return losses.topk(k).values.mean()
        return losses[hard].mean()
