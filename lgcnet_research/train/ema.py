"""An exponential moving average of a network's weights (Polyak averaging), the weights a run
is evaluated and shipped with."""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEma:
    """`module` is a frozen copy of the net whose parameters and buffers follow the net's as
    ema = d·ema + (1 - d)·net after every optimizer step, with d = min(decay, (1 + n)/(10 + n))
    at update n: short runs are not dominated by their random start. BN statistics (buffers)
    are averaged the same way; integer buffers are copied."""

    def __init__(self, net: nn.Module, decay: float, updates: int = 0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.module = copy.deepcopy(net).eval().requires_grad_(False)
        self.decay, self.updates = decay, updates

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        for ema, now in zip(self.module.state_dict().values(), net.state_dict().values()):
            if ema.dtype.is_floating_point:
                ema.lerp_(now.detach(), 1.0 - d)
            else:
                ema.copy_(now)
