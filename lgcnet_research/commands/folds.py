"""`lgcnet folds`: the sequence-held-out folds (list them; evaluate a checkpoint on one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgcnet_research.commands import register_command
from lgcnet_research.train.folds import FOLD_CHOICES, FOLDS


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("action", choices=("list", "eval"),
                   help="list: frames per fold; eval: score CHECKPOINT on --fold's held-out drive")
    p.add_argument("checkpoint", nargs="?", type=Path, help="for eval: a fold run's checkpoint")
    p.add_argument("--fold", choices=tuple(FOLDS),
                   help="A (drive 0006R0), B (0001TP) or C (the later half of 0001TP)")
    p.add_argument("--data", default=None, help="CamVid root (with train/ and val/)")
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--exposure-target", type=float, default=None, metavar="LUMINANCE",
                   help="brighten the held-out frames darker than this mean luminance (0-1), "
                        "in place of the checkpoint's own setting: what normalising the "
                        "exposure does for a net trained without it (e.g. 0.45)")
    return p


def register(sub: argparse._SubParsersAction) -> None:
    register_command(
        sub, "folds", add_arguments, "lgcnet_research.commands.folds:run",
        help="sequence-held-out folds of CamVid: list them, evaluate a fold run",
        description="CamVid's val is cut from inside a training drive and leaks. A fold holds "
        "out one whole drive of the 468 labelled frames: A holds out 0006R0 (101 frames), B "
        "holds out 0001TP (62, dusk). C, a check beside them, holds out 0001TP's later half "
        "(31), as CamVid's test split continues that drive after its training frames. Train "
        "with `lgcnet train --fold A ...`; judge the run by its final epoch: `lgcnet folds "
        "eval OUT/last.pt --fold A` (EMA weights when the run kept them; a checkpoint that "
        "saw the held-out frames is refused).",
        epilog="example: lgcnet folds eval runs/fold_a_recipe/last.pt --fold A")


def run(args: argparse.Namespace) -> int:
    from lgcnet_research.train.folds import fold_frames

    if args.action == "list":
        for fold in FOLD_CHOICES:
            train, held = fold_frames(fold, args.data)
            print(f"{fold:>3}: train {len(train)} frames {train.drives()}; evaluate on "
                  f"{held.name} ({len(held)} frames)")
        return 0
    if args.checkpoint is None or args.fold is None:
        raise ValueError("lgcnet folds eval needs a CHECKPOINT and --fold A|B|C")
    from lgcnet_research.train.fold_eval import evaluate_fold, write_report

    report = evaluate_fold(args.checkpoint, args.fold, args.data, args.threads,
                           args.exposure_target)
    print(report.table())
    if args.json:
        write_report(report, args.json)
    return 0
