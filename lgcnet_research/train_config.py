"""The training recipe's options, without heavy imports (so `lgcnet -h` stays fast)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The recipe's options (shared by `python -m lgcnet_research.train` and `lgcnet train`)."""
    p.add_argument("--genotype", default="default", help="genotype name or JSON path")
    p.add_argument("--out", type=Path, default=Path("runs/train_default"))
    p.add_argument("--epochs", type=int, default=400, help="length of the poly schedule")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop this run after N more epochs (resume later with --resume)")
    p.add_argument("--batch", type=int, default=8, help="per process")
    p.add_argument("--crop", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    p.add_argument("--lr", type=float, default=0.02,
                   help="poly base LR (paper: 0.01 after ImageNet pretraining; from scratch 0.02)")
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--ohem-thresh", type=float, default=0.7)
    p.add_argument("--ohem-min-kept", type=int, default=50_000)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="CamVid root")
    p.add_argument("--limit", type=int, nargs=2, default=None, metavar=("TRAIN", "VAL"),
                   help="use only the first TRAIN/VAL frames (smoke tests)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--ship", type=Path, default=None,
                   help="copy every new best checkpoint here (e.g. the shipped model)")
    return p
