"""The search supernet: the derived network's frame with a mixed op on every edge (Eq. 3).

Same stem / 14 cells / fusion cell as `lgcnet_deploy.network.LGCNet` (the shared
`LGCNetFrame`), every candidate built from the one op table; or, with a trunk stem
(`space.TRUNKS`), the trunk and the cells after it, each at its stride in `cell_strides`, as a
trunk genotype has them. The trunk's weights train with the network's; it is not searched.
Architecture logits:

- cells: (K, p=5, q=8) cell-independent (K = 14, or the trunk's cells), or cell-shared (one
  normal and one reduction α, Table VI a; one α after a trunk), updated by the cell
  communication (GGM, FC or none) before sampling;
- fusion: (7, 9) for the Table III op edges and (6, 2) for the Up x2 edges.

`forward(x, tau)` samples Z by Gumbel-softmax and returns (logits, Z); `latency(Z)` is the
expected LAT of Eq. 8-9 from the latency table (after a trunk, plus the trunk's frame cost);
`derive()` takes the argmax of the communication-updated α per edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lgcnet_deploy.model.genotype import Genotype, Widths
from lgcnet_deploy.model.network import LGCNetFrame
from lgcnet_deploy.model.ops import build_op
from lgcnet_deploy.model.space import (
    CELL_EDGES,
    CELL_OPS,
    DEFAULT_FUSION_INPUTS,
    DEFAULT_REDUCTIONS,
    DEFAULT_STEM,
    FUSION_EDGES,
    FUSION_OPS,
    MAX_TRUNK_CELLS,
    NUM_CELLS,
    TRUNK_CELL_STRIDES,
    TRUNK_CELL_STRIDES_TEXT,
    TRUNKS,
    UP_OPS,
    cell_strides,
    edge_choices,
)
from lgcnet_research.base.edges import edge_specs, trunk_edge_specs
from lgcnet_research.latency.lut import LatencyTable
from lgcnet_research.search.ggm import CellCommunication
from lgcnet_research.search.relax import decision_stats, entropy, gumbel_softmax

OP_EDGES = tuple(e for e, fe in enumerate(FUSION_EDGES) if fe.kind == "op")
UP_EDGES = tuple(e for e, fe in enumerate(FUSION_EDGES) if fe.kind == "up")
CELL_SHARINGS = ("independent", "shared")
# Cell ops without weights: the ones a DARTS-style search collapses into (Zela et al. 2020).
PARAMETER_FREE_OPS = frozenset({"none", "skip_connect", "max_pool_3x3"})


@dataclass(frozen=True)
class SpaceConfig:
    """What the supernet looks like (the ablation switches of Tables VI, VIII, IX, XI)."""

    widths: Widths = field(default_factory=Widths)
    reductions: tuple[int, ...] = DEFAULT_REDUCTIONS
    fusion_inputs: tuple[int, ...] = DEFAULT_FUSION_INPUTS
    cell_sharing: str = "independent"
    communication: str = "gcn"  # "gcn" (GGM), "fc" or "none"
    graph: str = "edge"  # GGM reasoning graph: "edge" (similarity) or "op" (identity)
    gcn_dim: int = 64
    gamma: float = 0.5
    stem: str = DEFAULT_STEM  # the paper's stem, or a trunk (`space.TRUNKS`)
    cell_strides: tuple[int, ...] = ()  # a trunk's cells: the stride each works at
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.cell_sharing not in CELL_SHARINGS:
            raise ValueError(f"cell_sharing {self.cell_sharing!r}: choose one of "
                             f"{CELL_SHARINGS}")
        if self.cell_sharing == "shared" and self.communication != "none":
            raise ValueError("cell-shared search has one normal and one reduction α: there are "
                             "no per-cell α to communicate; use communication='none'")
        if self.has_trunk:
            self._check_trunk()
        elif self.stem != DEFAULT_STEM:
            raise ValueError(f"stem {self.stem!r}: the search runs after the paper's stem "
                             f"({DEFAULT_STEM!r}) or a trunk ({', '.join(TRUNKS)})")
        elif self.cell_strides:
            raise ValueError(f"cell_strides are for a trunk's cells (stem {', '.join(TRUNKS)});"
                             f" the paper's cells take their strides from the reductions")

    def _check_trunk(self) -> None:
        """The trunk genotype's frame: 1 to MAX_TRUNK_CELLS cells at strides 4, 8 or 16, stem
        widths the trunk's; no reduction cell and the fusion cell reading each stride's last
        cell, so `reductions` and `fusion_inputs` become () as a trunk genotype has them."""
        strides = self.cell_strides
        if not 0 < len(strides) <= MAX_TRUNK_CELLS or any(
                isinstance(s, bool) or s not in TRUNK_CELL_STRIDES for s in strides):
            raise ValueError(f"cell_strides {list(strides)}: after trunk {self.stem!r} give 1 "
                             f"to {MAX_TRUNK_CELLS} cells, each at one of the strides "
                             f"{TRUNK_CELL_STRIDES_TEXT} (e.g. [8, 8, 16])")
        channels = TRUNKS[self.stem].channels
        if tuple(self.widths.stem) != channels:
            raise ValueError(f"widths.stem {list(self.widths.stem)}: trunk {self.stem!r} hands "
                             f"on {list(channels)} channels at strides 4, 8, 16; give those")
        object.__setattr__(self, "reductions", ())
        object.__setattr__(self, "fusion_inputs", ())

    @property
    def has_trunk(self) -> bool:
        return self.stem in TRUNKS

    @property
    def strides(self) -> list[int]:
        """The stride each cell works at."""
        return list(self.cell_strides) if self.has_trunk else cell_strides(self.reductions,
                                                                            NUM_CELLS)


class MixedOp(nn.Module):
    """Σ_m z_m o_m(x) over the candidates (Eq. 3). Ops with z_m == 0 are skipped (their
    softmax gradient is 0 too), and so is the zero op, so hard (one-hot) Z runs one op.

    `free_op_dropout` (set by the search loop, 0 = the paper) drops the outputs of the
    parameter-free ops in training, as P-DARTS does after skip-connect (Chen et al. 2019)."""

    def __init__(self, names: tuple[str, ...], c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.names = names
        self.ops = nn.ModuleList(build_op(n, c_in, c_out, stride) for n in names)
        self.free_op_dropout = 0.0

    def forward(self, x: torch.Tensor, z: torch.Tensor, *args) -> torch.Tensor:
        out = None
        for m, (keep, name) in enumerate(zip((z != 0).tolist(), self.names)):
            if keep and name != "none":
                y = self.ops[m](x, *args)
                if name in PARAMETER_FREE_OPS and self.free_op_dropout > 0:
                    y = F.dropout(y, self.free_op_dropout, self.training)
                y = z[m] * y
                out = y if out is None else out + y
        if out is None:  # only the zero op: zeros of the strided shape
            zero = self.names.index("none")
            out = z[zero] * self.ops[zero](x)
        return out


class Supernet(nn.Module):
    def __init__(self, space: SpaceConfig, num_classes: int) -> None:
        super().__init__()
        self.space = space
        self.num_cells = len(space.strides)
        self.frame = LGCNetFrame(
            space.widths, space.strides, space.fusion_inputs,
            num_classes, cell_edge=lambda k, e, c, s: MixedOp(CELL_OPS, c, c, s),
            fusion_edge=lambda e, ci, co: MixedOp(edge_choices(FUSION_EDGES[e].kind), ci, co, 1),
            stem=space.stem)
        # shared: one normal α, and one reduction α where there are reduction cells
        n = self.num_cells if space.cell_sharing == "independent" else 1 + bool(space.reductions)
        p, q = len(CELL_EDGES), len(CELL_OPS)
        self.alpha_cells = nn.Parameter(1e-3 * torch.randn(n, p, q))
        self.alpha_fusion_op = nn.Parameter(1e-3 * torch.randn(len(OP_EDGES), len(FUSION_OPS)))
        self.alpha_fusion_up = nn.Parameter(1e-3 * torch.randn(len(UP_EDGES), len(UP_OPS)))
        self.communication = CellCommunication(self.num_cells, q, space.communication,
                                               space.gcn_dim, space.gamma, space.graph)
        self.register_buffer("lat_cells", torch.zeros(self.num_cells, p, q), persistent=False)
        self.register_buffer("lat_fusion_op", torch.zeros(len(OP_EDGES), len(FUSION_OPS)),
                             persistent=False)
        self.register_buffer("lat_fusion_up", torch.zeros(len(UP_EDGES), len(UP_OPS)),
                             persistent=False)
        self.register_buffer("lat_frame", torch.zeros(()), persistent=False)

    # -- parameters ----------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """α and the communication module's weights (optimised by Adam)."""
        return [self.alpha_cells, self.alpha_fusion_op, self.alpha_fusion_up,
                *self.communication.parameters()]

    def weight_parameters(self) -> list[nn.Parameter]:
        """The network's weights (optimised by SGD)."""
        return list(self.frame.parameters())

    # -- α ---------------------------------------------------------------------------------
    def cell_logits(self) -> torch.Tensor:
        """(K, p, q) logits per cell after the cell communication (α' of Eq. 5)."""
        if self.space.cell_sharing == "shared":
            idx = torch.tensor([int(k in self.space.reductions) for k in range(self.num_cells)],
                               device=self.alpha_cells.device)
            return self.alpha_cells[idx]
        return self.communication(self.alpha_cells)

    def fusion_logits(self) -> list[torch.Tensor]:
        """One logit vector per fusion edge, in FUSION_EDGES order."""
        rows = {e: self.alpha_fusion_op[i] for i, e in enumerate(OP_EDGES)}
        rows.update({e: self.alpha_fusion_up[i] for i, e in enumerate(UP_EDGES)})
        return [rows[e] for e in range(len(FUSION_EDGES))]

    def sample(self, tau: float, hard: bool = False, noise: bool = True,
               uniform_paths: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Z for every cell edge (K, p, q) and every fusion edge (Eq. 4; `noise=False`:
        without the Gumbel noise; `uniform_paths`: see `gumbel_softmax`)."""
        def draw(logits: torch.Tensor) -> torch.Tensor:
            return gumbel_softmax(logits, tau, hard, noise=noise, uniform_paths=uniform_paths)
        return draw(self.cell_logits()), [draw(a) for a in self.fusion_logits()]

    def forward(self, x: torch.Tensor, tau: float, hard: bool = False, noise: bool = True,
                uniform_paths: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at input size and the expected latency (µs) of the sampled Z."""
        z_cells, z_fusion = self.sample(tau, hard, noise, uniform_paths)
        logits = self.frame(x, cell_weights=list(z_cells), fusion_weights=z_fusion)
        return logits, self.latency(z_cells, z_fusion)

    # -- latency -----------------------------------------------------------------------------
    def set_latency_table(self, table: LatencyTable) -> None:
        """Load the per-edge, per-op latencies (µs) for this supernet's shapes, and after a
        trunk its frame cost (`stem_frame_us`)."""
        space = self.space
        table.check_matches(space.widths, tuple(space.reductions), space.stem)
        specs = trunk_edge_specs(space.widths, space.cell_strides, table.input_size) \
            if space.has_trunk else edge_specs(space.widths, space.reductions, table.input_size)
        lat = table.edge_latencies(specs)
        n_cell = self.num_cells * len(CELL_EDGES)
        self.lat_cells.copy_(torch.tensor(lat[:n_cell]).view_as(self.lat_cells))
        fusion = lat[n_cell:]
        self.lat_fusion_op.copy_(torch.tensor([fusion[e] for e in OP_EDGES]))
        self.lat_fusion_up.copy_(torch.tensor([fusion[e] for e in UP_EDGES]))
        self.lat_frame.fill_(table.trunk_frame_us(space.stem) if space.has_trunk else 0.0)

    def latency(self, z_cells: torch.Tensor, z_fusion: list[torch.Tensor]) -> torch.Tensor:
        """LAT = Σ_k Σ_edges Σ_m z·lat (Eq. 8-9) over cells and the fusion cell, in µs. After
        a trunk LAT adds the trunk's frame, so it is the table's whole-network prediction and
        β weighs a change against the whole network, not against a few cells' ops."""
        fused = torch.stack([z_fusion[e] for e in OP_EDGES])
        up = torch.stack([z_fusion[e] for e in UP_EDGES])
        return ((z_cells * self.lat_cells).sum() + (fused * self.lat_fusion_op).sum()
                + (up * self.lat_fusion_up).sum() + self.lat_frame)

    def set_free_op_dropout(self, rate: float) -> None:
        """Dropout rate on the outputs of the parameter-free cell ops (0 = the paper)."""
        for m in self.modules():
            if isinstance(m, MixedOp):
                m.free_op_dropout = rate

    # -- monitoring and derivation -------------------------------------------------------------
    @torch.no_grad()
    def decision(self) -> dict[str, float]:
        """How decided the cell edges are: mean top-1 op probability of softmax(α'), mean
        op-choice entropy (nats; ln q = undecided) and the share of parameter-free argmax ops;
        `alpha_top1_prob` is the mean top-1 of the raw α (before the cell communication), so a
        log tells whether α or the GGM's term made the decision."""
        free = tuple(i for i, name in enumerate(CELL_OPS) if name in PARAMETER_FREE_OPS)
        raw = decision_stats(self.alpha_cells)["mean_top1_prob"]
        return {**decision_stats(self.cell_logits(), free), "alpha_top1_prob": raw}

    def fusion_entropy(self) -> torch.Tensor:
        """Mean op-choice entropy (nats) over the fusion edges, with gradient."""
        return ((entropy(self.alpha_fusion_op) * len(OP_EDGES)
                 + entropy(self.alpha_fusion_up) * len(UP_EDGES)) / len(FUSION_EDGES))

    @torch.no_grad()
    def entropies(self) -> dict[str, float]:
        """Mean op-choice entropy per cell and for the fusion cell (nats)."""
        out = {f"cell{k}": float(entropy(a)) for k, a in enumerate(self.cell_logits())}
        out["fusion"] = float(self.fusion_entropy())
        return out

    @torch.no_grad()
    def argmax_weights(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One-hot Z of the derived architecture (for evaluating the supernet as derived)."""
        def one_hot(a: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(a).scatter_(-1, a.argmax(-1, keepdim=True), 1.0)

        return one_hot(self.cell_logits()), [one_hot(a) for a in self.fusion_logits()]

    @torch.no_grad()
    def derive(self, name: str = "searched", provenance: dict | None = None) -> Genotype:
        """Argmax of the communication-updated α on every edge -> genotype."""
        cells = tuple(tuple(CELL_OPS[i] for i in row.argmax(-1).tolist())
                      for row in self.cell_logits())
        fusion = tuple(edge_choices(FUSION_EDGES[e].kind)[int(a.argmax())]
                       for e, a in enumerate(self.fusion_logits()))
        return Genotype(cells=cells, fusion_ops=fusion, reductions=tuple(self.space.reductions),
                        fusion_inputs=tuple(self.space.fusion_inputs), widths=self.space.widths,
                        stem=self.space.stem, trunk_strides=tuple(self.space.cell_strides),
                        name=name, provenance=dict(provenance or {}))
