"""The IoU a segmentation net could reach at most, class by class, when its logits live at
stride s and are upsampled bilinearly to the frame, as LGCNet's and the teachers' heads do
(stride 4) and LR-ASPP's (stride 8): each held-out label map's one-hot averaged over s×s cells
(the best such a logit map can hold), upsampled bilinearly, its argmax scored against the
full-resolution labels. Folds A and B are pooled into one confusion matrix, as the fold table
pools runs.

    python -m experiments.stride_ceiling --strides 2 4 8 --out results/stride_ceiling

A class whose ceiling at a net's stride sits near what the net scores is held back by that
stride; one far above it is held back by what the features carry. Writes
stride_ceiling.json and stride_ceiling.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.data import read_label
from lgcnet_deploy.core.errors import EXIT_USER_INPUT, LgcnetError
from lgcnet_deploy.core.metrics import ConfusionMatrix
from lgcnet_research.train.folds import POOLED_FOLDS, fold_frames


def ceiling_prediction(label: np.ndarray, stride: int, num_classes: int) -> np.ndarray:
    """The label map as a net whose logits live at `stride` could at best predict it: the
    one-hot averaged over stride×stride cells (void pixels count for no class), upsampled
    bilinearly to the label's size, then argmax."""
    y = torch.from_numpy(label.astype(np.int64))
    valid = (y < num_classes).float()
    one_hot = F.one_hot(y.clamp(max=num_classes - 1), num_classes).permute(2, 0, 1) * valid
    cells = F.avg_pool2d(one_hot[None].float(), stride, ceil_mode=True)
    return F.interpolate(cells, size=label.shape, mode="bilinear",
                         align_corners=False)[0].argmax(0).numpy()


def ceilings(strides: list[int], root: str | None = None) -> dict[int, ConfusionMatrix]:
    """Per stride, the confusion matrix of the ceiling predictions over both folds' held-out
    frames."""
    matrices = {s: ConfusionMatrix(CAMVID.num_classes, CAMVID.ignore_index) for s in strides}
    for fold in POOLED_FOLDS:
        held_out = fold_frames(fold, root)[1]
        for split, i in held_out.refs:
            label = read_label(split.labels[i])
            for stride, matrix in matrices.items():
                matrix.update(ceiling_prediction(label, stride, CAMVID.num_classes), label)
    return matrices


def markdown(iou: dict[int, list[float]]) -> str:
    head = ["stride", "mIoU", *CAMVID.classes]
    rows = [f"| {s} | {100 * np.mean(v):.1f} | " + " | ".join(f"{100 * x:.1f}" for x in v) + " |"
            for s, v in iou.items()]
    return "\n".join([
        "# Stride ceilings: the best IoU of logits at stride s, upsampled bilinearly",
        "", "Held-out frames of folds A and B pooled (`python -m experiments.stride_ceiling`).",
        "", "| " + " | ".join(head) + " |", "|" + " ---: |" * len(head), *rows, ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.stride_ceiling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strides", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--data", help="CamVid root (default: $LGCNET_CAMVID)")
    p.add_argument("--out", type=Path, default=Path("results/stride_ceiling"))
    args = p.parse_args(argv)
    if any(s < 1 for s in args.strides):
        print(f"stride_ceiling: error: strides must be >= 1, got {args.strides}",
              file=sys.stderr)
        return EXIT_USER_INPUT
    try:
        matrices = ceilings(args.strides, args.data)
    except LgcnetError as e:  # CamVid missing, or a fold's drive not there
        print(f"stride_ceiling: error: {e}", file=sys.stderr)
        return e.exit_code
    iou = {s: [0.0 if math.isnan(x) else float(x) for x in m.iou()] for s, m in matrices.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stride_ceiling.json").write_text(json.dumps(
        {"folds": list(POOLED_FOLDS), "classes": list(CAMVID.classes),
         "iou": {str(s): v for s, v in iou.items()}}, indent=1) + "\n")
    table = markdown(iou)
    (args.out / "stride_ceiling.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
