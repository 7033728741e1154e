"""The search's settings: one dataclass, loadable from JSON (`--config`), overridable per flag.

Torch-free, so `lgcnet search -h` stays fast. Defaults are the paper's (§IV-A): Adam for α
(1e-3, betas (0.5, 0.999), wd 1e-4), SGD for weights (momentum 0.9, wd 1e-3, cosine
0.025 -> 0.001), Gumbel temperature 1.0 -> 0.03, β = 0.005, GGM with d = 64 and γ = 0.5.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lgcnet_deploy.core.metadata import read_json
from lgcnet_deploy.model.genotype import Widths
from lgcnet_deploy.model.space import DEFAULT_FUSION_INPUTS, DEFAULT_REDUCTIONS


@dataclass
class SearchConfig:
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
    arch_warmup: int = 0  # steps that train only the weights before α moves (paper: 0)
    w_lr_max: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_wd: float = 1e-3
    a_lr: float = 1e-3
    a_betas: tuple[float, float] = (0.5, 0.999)
    a_wd: float = 1e-4
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

    def widths_obj(self) -> Widths:
        return Widths.from_dict(self.widths)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown search setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(known)}")
        cfg = cls(**d)
        for name in ("crop", "scale", "a_betas", "reductions", "fusion_inputs"):
            setattr(cfg, name, tuple(getattr(cfg, name)))
        return cfg

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> SearchConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"search config not found: {path}")
        return cls.from_dict({**read_json(path, ValueError), **overrides})


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags for `python -m lgcnet_research.search` and `lgcnet search`; each overrides --config."""
    s = argparse.SUPPRESS
    p.add_argument("--config", type=Path, default=None, help="JSON file of SearchConfig fields")
    p.add_argument("--out", default=s, help="run folder (genotype, log, plot, state)")
    p.add_argument("--lut", default=s, help="latency table JSON (`lgcnet lut`)")
    p.add_argument("--beta", type=float, default=s, help="latency weight β (paper 0.005)")
    p.add_argument("--steps", type=int, default=s)
    p.add_argument("--batch", type=int, default=s, help="per process")
    p.add_argument("--crop", type=int, nargs=2, default=s, metavar=("H", "W"))
    p.add_argument("--hard", action="store_true", default=s,
                   help="straight-through one-hot Gumbel: one op per edge runs")
    p.add_argument("--arch-warmup", dest="arch_warmup", type=int, default=s)
    p.add_argument("--communication", choices=("gcn", "fc", "none"), default=s)
    p.add_argument("--graph", choices=("edge", "op"), default=s)
    p.add_argument("--cell-sharing", dest="cell_sharing", choices=("independent", "shared"),
                   default=s)
    p.add_argument("--gcn-dim", dest="gcn_dim", type=int, default=s)
    p.add_argument("--fusion-inputs", dest="fusion_inputs", type=int, nargs=3, default=s)
    p.add_argument("--seed", type=int, default=s)
    p.add_argument("--threads", type=int, default=s)
    p.add_argument("--device", default=s)
    p.add_argument("--data", default=s, help="CamVid root")
    p.add_argument("--limit", type=int, default=s, help="first N train frames only (smoke)")
    p.add_argument("--val-every", dest="val_every", type=int, default=s)
    p.add_argument("--val-frames", dest="val_frames", type=int, default=s)
    p.add_argument("--log-every", dest="log_every", type=int, default=s)
    p.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, default=s)
    p.add_argument("--resume", action="store_true", help="continue from OUT/search_state.pt")
    return p


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("config", "resume", "func", "command")}
    if args.config is not None:
        return SearchConfig.load(args.config, **overrides)
    return SearchConfig.from_dict(overrides)
