"""The architecture step, apart from the weight step (as `Architect` in darts' code).

The paper updates α and the weights from one loss in one backward pass (first order, same
batch): the Architect owns α's optimizer (Adam), the latency term of Eq. 10 and the α update,
which waits `arch_warmup` steps so α does not follow the gradients of a random network.
`entropy_weight` (0 in the paper) adds the op-choice entropy of α to that loss, ramped up
over the α phase. It reads the raw α, not α′: on α′ the GGM can sharpen every edge at once by
growing its own weights (measured: mean top-1 0.19 → 0.58 in 50 steps, the free-op share 0.54
→ 0.76). The term does not depend on the weights, so their gradient stays the paper's.
"""

from __future__ import annotations

import torch

from lgcnet_deploy.model.space import FUSION_EDGES
from lgcnet_research.latency.lut import LatencyTable
from lgcnet_research.search.config import SearchConfig
from lgcnet_research.search.relax import entropy
from lgcnet_research.search.supernet import Supernet


def load_latency_table(cfg: SearchConfig) -> LatencyTable | None:
    """The table the latency loss reads (None when β = 0)."""
    if cfg.beta <= 0:
        return None
    if not cfg.lut:
        raise ValueError("β > 0 needs a latency table: pass --lut (measure one with "
                         "`lgcnet lut`) or set --beta 0")
    return LatencyTable.load(cfg.lut)


class Architect:
    """α's optimizer, the loss CE + β·log(LAT) (Eq. 10) and the α update."""

    def __init__(self, net: Supernet, cfg: SearchConfig, table: LatencyTable | None) -> None:
        self.net, self.table = net, table
        self.beta, self.warmup = cfg.beta, cfg.arch_warmup
        self.entropy_weight, self.steps = cfg.entropy_weight, cfg.steps
        if table is not None:
            net.set_latency_table(table)
        groups: list[dict] = [{"params": net.arch_parameters()}]  # the paper: one optimizer
        comm = list(net.communication.parameters())
        if comm and cfg.comm_lr is not None:  # the GGM's weights at their own LR
            groups = [{"params": [p for p in groups[0]["params"]
                                  if all(p is not c for c in comm)]},
                      {"params": comm, "lr": cfg.comm_lr}]
        self.optimizer = torch.optim.Adam(groups, lr=cfg.a_lr, betas=tuple(cfg.a_betas),
                                          weight_decay=cfg.a_wd)

    def loss(self, ce: torch.Tensor, lat: torch.Tensor,
             entropy_weight: float = 0.0) -> torch.Tensor:
        """Eq. 10 with LAT in µs (CE alone when there is no latency table), plus
        `entropy_weight` (this step's `entropy_ramp`) times the op-choice entropy."""
        loss = ce + self.beta * torch.log(lat) if self.table is not None else ce
        return loss + entropy_weight * self.choice_entropy() if entropy_weight > 0 else loss

    def entropy_ramp(self, step: int) -> float:
        """The entropy weight at `step`: 0 until the α warm-up ends, then linear up to
        `entropy_weight` at the last step."""
        if self.entropy_weight <= 0 or step < self.warmup:
            return 0.0
        return self.entropy_weight * min(1.0, (step - self.warmup + 1)
                                         / max(self.steps - self.warmup, 1))

    def choice_entropy(self) -> torch.Tensor:
        """Mean op-choice entropy (nats) of the raw α over all cell and fusion edges."""
        cells = self.net.alpha_cells
        n_cell, n_fusion = cells.shape[0] * cells.shape[1], len(FUSION_EDGES)
        return ((entropy(cells) * n_cell + self.net.fusion_entropy() * n_fusion)
                / (n_cell + n_fusion))

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, step: int) -> bool:
        """Update α from the gradients of the shared backward pass, unless still warming up;
        returns whether α moved."""
        if step < self.warmup:
            return False
        self.optimizer.step()
        return True

    def predict_ms(self) -> float | None:
        """The LUT's whole-network latency of the currently derived genotype."""
        return self.table.predict_ms(self.net.derive()) if self.table is not None else None
