"""The search's settings (`lgcnet_research.base.settings` style: JSON `--config`, then flags).

Torch-free, so `lgcnet search -h` stays fast. Defaults are the paper's (§IV-A): Adam for α
(1e-3, betas (0.5, 0.999), wd 1e-4), SGD for weights (momentum 0.9, wd 1e-3, cosine
0.025 -> 0.001), Gumbel temperature 1.0 -> 0.03, β = 0.005, GGM with d = 64 and γ = 0.5.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lgcnet_deploy.model.genotype import Widths
from lgcnet_deploy.model.space import (
    DEFAULT_FUSION_INPUTS,
    DEFAULT_REDUCTIONS,
    DEFAULT_STEM,
    TRUNK_CELL_STRIDES_TEXT,
    TRUNKS,
)
from lgcnet_research.base.settings import Settings


@dataclass
class SearchConfig(Settings):
    KIND: ClassVar[str] = "search"
    HELP: ClassVar[dict[str, str]] = {
        "out": "run folder (genotype, log, plot, state)",
        "lut": "latency table JSON (`lgcnet lut`)",
        "beta": "latency weight β (paper 0.005)",
        "batch": "per process",
        "crop": "train crop H W",
        "hard": "straight-through one-hot Gumbel: one op per edge runs (CPU budget)",
        "gumbel": "Gumbel noise in Z (Eq. 4, the paper); --no-gumbel: Z = softmax(α/λ), "
                  "DARTS' deterministic mix (soft relaxation only)",
        "uniform_paths": "with --hard: the op run on each edge is drawn uniformly, not from Z, "
                         "so a lead in α does not train its own op more (SPOS-style "
                         "decoupling); α's gradient still flows through Z (paper: false)",
        "arch_warmup": "steps that train only the weights before α moves (paper: 0)",
        "a_lr": "α learning rate (Adam; paper 1e-3)",
        "comm_lr": "learning rate of the cell communication (GGM) weights (default: a_lr, "
                   "one optimizer as in the paper)",
        "entropy_weight": "weight w of an entropy penalty on the op choice, w·H(softmax(α)) "
                          "averaged over cell and fusion edges, ramped linearly from 0 at the "
                          "end of the α warm-up to w at the last step, so the search ends on a "
                          "decision (DA²S, Tian et al. 2021; paper: 0)",
        "free_op_dropout": "dropout on parameter-free cell ops' outputs, decayed linearly to 0 "
                           "over the search (P-DARTS; paper: 0)",
        "widths": 'JSON like {"stem": [8, 16, 16], "cells": [16, 64, 192], "fusion": 48} '
                  '(after a trunk, stem: the trunk\'s channels, e.g. [24, 40, 112])',
        "stem": "the layers before the searched cells: the paper's stem (conv) or a pretrained "
                "trunk to stride 16 (lite0_s16), whose cells then work at cell_strides",
        "cell_strides": f"after a trunk: the stride each searched cell works at, one of "
                        f"{TRUNK_CELL_STRIDES_TEXT} (e.g. 8 8 16); no reduction "
                        f"cells, and the fusion cell reads each stride's last cell (reductions "
                        f"and fusion_inputs do not apply)",
        "imagenet_stem": "start the trunk from EfficientNet-Lite0's ImageNet weights (trained "
                         "with the network's weights, not searched)",
        "data": "CamVid root",
        "limit": "first N train frames only (smoke tests)",
        "branch_from": "another search's state (its OUT/search_state.pt) to start from: its "
                       "weights, α, step and log, then this config's settings (e.g. another "
                       "α lr after one shared weight-only warm-up); the α optimizer starts "
                       "fresh",
        "time_limit": "stop after N seconds; the schedules (λ, weight LR, free-op dropout, "
                      "α warm-up) then run over the time: step s counts as "
                      "max(s, steps·elapsed/N) (a box of unknown speed; not resumable)",
    }
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "cell_sharing": ("independent", "shared"), "communication": ("gcn", "fc", "none"),
        "graph": ("edge", "op"), "stem": (DEFAULT_STEM, *TRUNKS)}

    out: str = "runs/search"
    lut: str | None = "results/luts/onnxruntime-cpu_769x1537.json"
    beta: float = 0.005
    steps: int = 1000
    batch: int = 8
    crop: tuple[int, int] = (192, 256)
    scale: tuple[float, float] = (0.375, 1.0)  # CamVid frames are 360x480: crops keep context
    tau_max: float = 1.0
    tau_min: float = 0.03
    hard: bool = False  # straight-through one-hot Z: one op per edge runs (CPU budget)
    gumbel: bool = True  # False: no Gumbel noise, a lower-variance α gradient (DARTS)
    uniform_paths: bool = False  # hard only: paths drawn uniformly, not steered by α
    arch_warmup: int = 0  # steps that train only the weights before α moves (paper: 0)
    free_op_dropout: float = 0.0  # P-DARTS anti-collapse regulariser (paper: 0)
    entropy_weight: float = 0.0  # DA²S-style push to a one-hot decision (paper: 0)
    w_lr_max: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_wd: float = 1e-3
    a_lr: float = 1e-3
    a_betas: tuple[float, float] = (0.5, 0.999)
    a_wd: float = 1e-4
    comm_lr: float | None = None  # GGM weights' Adam LR; None = a_lr (the paper: one optimizer)
    # search space and ablation switches (Tables VI, VIII, IX, XI)
    widths: dict[str, Any] = field(default_factory=lambda: {
        "stem": [8, 16, 16], "cells": [16, 64, 192], "fusion": 48})
    reductions: tuple[int, ...] = DEFAULT_REDUCTIONS
    fusion_inputs: tuple[int, ...] = DEFAULT_FUSION_INPUTS
    cell_sharing: str = "independent"
    communication: str = "gcn"
    graph: str = "edge"
    gcn_dim: int = 64
    gamma: float = 0.5
    stem: str = DEFAULT_STEM
    cell_strides: tuple[int, ...] = ()  # a trunk's cells (stem in space.TRUNKS)
    imagenet_stem: bool = False  # the trunk from ImageNet
    # bookkeeping
    val_every: int = 100
    val_frames: int = 24
    log_every: int = 10
    checkpoint_every: int = 50
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    data: str | None = None
    limit: int | None = None  # use only the first N train frames (smoke tests)
    time_limit: float | None = None
    branch_from: str | None = None

    def __post_init__(self) -> None:
        if self.hard and not self.gumbel:
            raise ValueError("hard sampling without Gumbel noise runs the argmax op on every "
                             "step, so the other ops are never tried: use --gumbel or --no-hard")
        if self.uniform_paths and not self.hard:
            raise ValueError("uniform_paths draws the one op each edge runs: it needs --hard "
                             "(the soft relaxation runs every op)")
        if self.entropy_weight < 0:
            raise ValueError(f"entropy_weight {self.entropy_weight} would reward undecided "
                             f"edges: use 0 (the paper) or a positive weight")
        if self.stem in TRUNKS:
            self._check_trunk_settings()
        elif self.imagenet_stem:
            raise ValueError(f"imagenet_stem starts a trunk from ImageNet: give a trunk stem "
                             f"({', '.join(TRUNKS)}) or drop imagenet_stem")

    def _check_trunk_settings(self) -> None:
        """A trunk has no reduction cells and its fusion inputs are implied: settings for
        those would be ignored, so only their defaults (or empty) pass."""
        for name, default in (("reductions", DEFAULT_REDUCTIONS),
                              ("fusion_inputs", DEFAULT_FUSION_INPUTS)):
            if tuple(getattr(self, name)) not in ((), default):
                raise ValueError(f"{name} do not apply after trunk {self.stem!r}: its cells "
                                 f"work at cell_strides and the fusion cell reads each "
                                 f"stride's last cell; drop {name}")

    def widths_obj(self) -> Widths:
        return Widths.from_dict(self.widths)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--config`, one flag per SearchConfig field, and `--resume`."""
    SearchConfig.add_flags(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT/search_state.pt")
    return p
