"""Fold every BatchNorm into the convolution before it (inference only)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from lgcnet_deploy.core.errors import BadInputError

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


@torch.no_grad()
def _fold_into(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    # Conv2d weight is (out, in/g, k, k); ConvTranspose2d is (in, out/g, k, k), and with
    # groups == 1 its output channels are dim 1.
    if isinstance(conv, nn.ConvTranspose2d):
        if conv.groups != 1:
            raise NotImplementedError("folding BN into a grouped ConvTranspose2d")
        conv.weight.mul_(scale.view(1, -1, 1, 1))
    else:
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * scale + bn.bias
    conv.bias = nn.Parameter(new_bias)


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return `model` (in eval mode) with each Conv->BN pair in an nn.Sequential folded.

    Raises ValueError if a BatchNorm is left that does not follow a conv, so a layout change
    in `ops` cannot silently leave BN in a deployed graph.
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(1, len(seq)):
            if isinstance(seq[i], nn.BatchNorm2d) and isinstance(seq[i - 1], _CONVS):
                _fold_into(seq[i - 1], seq[i])
                seq[i] = nn.Identity()
    left = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:
        raise BadInputError(f"BatchNorm not preceded by a conv, cannot fold: {left[:5]}")
    return model
