"""How much better than its members is an ensemble of fold runs? The ceiling a teacher built
from them (or any model that learns from the same frames) could pass on to a student.

    python -m experiments.ensemble --fold B runs/fold_b_trunk/last.pt \
        runs/fold_b_trunk_w16/last.pt runs/fold_b_trunk_w16_detail/last.pt --views \
        --out results/ensemble/fold_b.json

Each checkpoint (refused unless it trained on the fold's frames only, as `lgcnet folds eval`
refuses it) scores the drive its fold holds out, each at its own input size; the ensemble's
prediction is the mean of the members' class probabilities. `--views` averages each member's
logits over the views a cached teacher's targets are (`train.targets.teacher_logits`: scales
0.75, 1 and 1.25 and their mirrors) before its softmax. Prints per-class IoU of every member
and of the ensemble; --out keeps them with the ensemble's confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.errors import EXIT_USER_INPUT, LgcnetError
from lgcnet_deploy.core.exposure import normalise_exposure
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.core.metrics import ConfusionMatrix
from lgcnet_research.train.fold_eval import as_exported, check_unseen, load_net
from lgcnet_research.train.folds import FOLDS, fold_frames
from lgcnet_research.train.targets import teacher_logits

TEACHER_VIEWS = (0.75, 1.0, 1.25)  # train.targets' default views (with mirrors)


def member(path: Path, fold: str) -> tuple[Callable[[torch.Tensor], torch.Tensor], float | None]:
    """Checkpoint `path` as a function of a normalised frame batch, at its input size, and
    the exposure target its frames are brightened to (`core.exposure`)."""
    net, payload = load_net(path)
    check_unseen(fold, payload.get("provenance") or {}, path)
    exposure = ModelMeta.from_dict(payload["meta"], path).exposure_target
    return as_exported(net.eval(), payload), exposure


@torch.no_grad()
def score(paths: list[Path], fold: str, views: bool, root: str | None = None
          ) -> dict[str, ConfusionMatrix]:
    """A confusion matrix per member (by path) and one for "ensemble", on `fold`'s held-out
    drive."""
    members = {str(p): member(p, fold) for p in paths}
    scales = TEACHER_VIEWS if views else (1.0,)
    matrices = {name: ConfusionMatrix(CAMVID.num_classes, CAMVID.ignore_index)
                for name in [*members, "ensemble"]}
    held_out = fold_frames(fold, root)[1]
    for i in tqdm(range(len(held_out)), desc=f"fold {fold}"):
        bgr, label = held_out[i]
        probs = {name: teacher_logits(forward, normalise_exposure(bgr, exposure), scales,
                                      views).softmax(0)
                 for name, (forward, exposure) in members.items()}
        probs["ensemble"] = sum(probs.values()) / len(members)
        for name, p in probs.items():
            matrices[name].update(p.argmax(0).numpy(), label)
    return matrices


def report(matrices: dict[str, ConfusionMatrix]) -> dict[str, dict[str, float]]:
    """mIoU and per-class IoU (%) of each member and the ensemble."""
    return {name: {"miou": 100 * cm.miou(),
                   **{c: 100 * float(np.nan_to_num(v)) for c, v in zip(CAMVID.classes, cm.iou())}}
            for name, cm in matrices.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.ensemble", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", type=Path, nargs="+", help="fold runs' checkpoints (2 or more)")
    p.add_argument("--fold", choices=sorted(FOLDS), required=True)
    p.add_argument("--views", action="store_true", help="average each member over a cached "
                                                        "teacher's views (scales and mirrors)")
    p.add_argument("--data", help="CamVid root (default: $LGCNET_CAMVID)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, help="write the report here (JSON)")
    args = p.parse_args(argv)
    if len(args.checkpoints) < 2:
        p.error("an ensemble needs 2 or more checkpoints")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        matrices = score(args.checkpoints, args.fold, args.views, args.data)
    except (LgcnetError, ValueError) as e:  # a missing or damaged checkpoint; one the fold
        print(f"error: {e}", file=sys.stderr)  # check refuses (FoldError, a ValueError)
        return getattr(e, "exit_code", EXIT_USER_INPUT)
    rows = report(matrices)
    shown = ("miou", "pole", "sign", "fence", "pedestrian", "bicyclist")
    print(f"{'fold ' + args.fold:<40}" + "".join(f"{c[:6]:>8}" for c in shown))
    for name, row in rows.items():
        print(f"{name[-40:]:<40}" + "".join(f"{row[c]:8.2f}" for c in shown))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"fold": args.fold, "views": args.views, "command": " ".join(
            ["python -m experiments.ensemble", *(argv if argv is not None else sys.argv[1:])]),
            "iou": rows, "confusion": matrices["ensemble"].matrix.tolist()}
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
