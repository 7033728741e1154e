"""What does a fold run's score depend on: the frame's fine detail, or the size it is run at?

    python -m experiments.input_probe runs/fold_b_trunk_w16_exposure_lovasz_2x_context/last.pt \
        --fold B --sizes 540x720 360x480 --out results/input_probe/fold_b_2x_context.json

Scores one checkpoint (refused unless it trained on the fold's frames only, as `lgcnet folds
eval` refuses it) on the drive its fold holds out, once per input variant:

- "as exported": at the input size its metadata names, as `lgcnet folds eval` scores it;
- "detail halved": each frame shrunk to half its size (area) and enlarged back (bilinear),
  then run as exported: the same field of view in pixels, without the finest detail;
- "blur σ=S": each frame Gaussian-blurred with σ = S pixels, then run as exported;
- "at HxW": the frame resized to HxW and the logits resized back (`--sizes`): the same detail
  removed, and the net's receptive field spanning more of the frame.

A net that loses a class for want of context recovers it at a smaller size; one that learnt
the class from fine texture loses more of it when the detail goes. Prints per-class IoU per
variant; --out keeps them with each variant's confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from experiments.ensemble import report
from lgcnet_deploy.cli.args import image_size
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.errors import EXIT_USER_INPUT, LgcnetError
from lgcnet_deploy.core.exposure import normalise_exposure
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.core.metrics import ConfusionMatrix
from lgcnet_research.train.data import normalize
from lgcnet_research.train.fold_eval import check_unseen, load_net
from lgcnet_research.train.folds import FOLDS, fold_frames
from lgcnet_research.train.trainer import at_input_size

Forward = Callable[[torch.Tensor], torch.Tensor]
Degrade = Callable[[np.ndarray], np.ndarray]


def detail_halved(bgr: np.ndarray) -> np.ndarray:
    """`bgr` shrunk to half its size (area) and enlarged back (bilinear)."""
    h, w = bgr.shape[:2]
    half = cv2.resize(bgr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR)


def blurred(sigma: float) -> Degrade:
    return lambda bgr: cv2.GaussianBlur(bgr, (0, 0), sigma)


def variants(net: torch.nn.Module, input_size: tuple[int, int], sizes: list[tuple[int, int]],
             blur: float) -> dict[str, tuple[Degrade | None, Forward]]:
    """Each variant's name, what it does to a frame, and how it runs the net."""
    exported = at_input_size(net, input_size)
    chosen: dict[str, tuple[Degrade | None, Forward]] = {
        f"as exported ({input_size[0]}x{input_size[1]})": (None, exported),
        "detail halved": (detail_halved, exported),
        f"blur σ={blur:g}": (blurred(blur), exported)}
    for size in sizes:
        chosen[f"at {size[0]}x{size[1]}"] = (None, at_input_size(net, size))
    return chosen


@torch.no_grad()
def score(path: Path, fold: str, sizes: list[tuple[int, int]], blur: float = 1.0,
          root: str | None = None) -> dict[str, ConfusionMatrix]:
    """A confusion matrix per input variant of checkpoint `path` on `fold`'s held-out drive."""
    if fold not in FOLDS:
        raise ValueError(f"fold {fold!r}: choose one of {', '.join(FOLDS)}")
    net, payload = load_net(path)
    check_unseen(fold, payload.get("provenance") or {}, path)
    meta = ModelMeta.from_dict(payload["meta"], path)
    chosen = variants(net.eval(), tuple(meta.input_size), sizes, blur)
    matrices = {name: ConfusionMatrix(CAMVID.num_classes, CAMVID.ignore_index)
                for name in chosen}
    held_out = fold_frames(fold, root)[1]
    for i in tqdm(range(len(held_out)), desc=f"fold {fold}"):
        bgr, label = held_out[i]
        bgr = normalise_exposure(bgr, meta.exposure_target)
        for name, (degrade, forward) in chosen.items():
            frame = degrade(bgr) if degrade else bgr
            matrices[name].update(forward(normalize(frame)[None])[0].argmax(0).numpy(), label)
    return matrices


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.input_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a fold run's checkpoint")
    p.add_argument("--fold", choices=sorted(FOLDS), required=True)
    p.add_argument("--sizes", type=image_size, nargs="*", default=[],
                   help="other input sizes to run the net at (HxW)")
    p.add_argument("--blur", type=float, default=1.0, help="the blur variant's σ in pixels")
    p.add_argument("--data", help="CamVid root (default: $LGCNET_CAMVID)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, help="write the report here (JSON)")
    args = p.parse_args(argv)
    if args.blur <= 0:
        p.error(f"--blur {args.blur:g}: σ must be above 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        matrices = score(args.checkpoint, args.fold, args.sizes, args.blur, args.data)
    except (LgcnetError, ValueError) as e:  # a missing or damaged checkpoint; one the fold
        print(f"error: {e}", file=sys.stderr)  # check refuses (FoldError, a ValueError)
        return getattr(e, "exit_code", EXIT_USER_INPUT)
    rows = report(matrices)
    print(f"{'fold ' + args.fold:<24}{'mIoU':>7}" + "".join(f"{c[:6]:>7}" for c in CAMVID.classes))
    for name, row in rows.items():
        print(f"{name:<24}{row['miou']:7.2f}" + "".join(f"{row[c]:7.1f}" for c in CAMVID.classes))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"fold": args.fold, "command": " ".join(
            ["python -m experiments.input_probe", *(argv if argv is not None else sys.argv[1:])]),
            "iou": rows, "confusion": {name: cm.matrix.tolist() for name, cm in matrices.items()}}
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
