"""`lgcnet train`: the CamVid training recipe of lgcnet_research/train.py behind the lgcnet CLI."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from lgcnet_research.train_config import add_arguments

    p = sub.add_parser(
        "train", help="train a genotype on CamVid (SGD poly, OHEM CE; resumable, torchrun DDP)",
        description="The paper's recipe (§IV-A) from scratch: SGD + poly LR, OHEM "
        "cross-entropy with void ignored, random flip / scale 0.5-2.0 / crop; val mIoU every "
        "--eval-every epochs; OUT/last.pt each epoch, OUT/best.pt on a new best. Same options "
        "as `python -m lgcnet_research.train` (use that under torchrun).",
        epilog="example: lgcnet train --out runs/train_default --ship "
        "lgcnet_deploy/model/weights/lgcnet_camvid.pt --resume")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lgcnet_research.train import run as train

    return train(args)
