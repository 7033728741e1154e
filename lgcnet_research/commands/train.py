"""`lgcnet train`: the CamVid training recipe (lgcnet_research/train/trainer.py)."""

from __future__ import annotations

import argparse

from lgcnet_research.commands import register_command


def register(sub: argparse._SubParsersAction) -> None:
    from lgcnet_research.train.config import add_arguments

    register_command(
        sub, "train", add_arguments, "lgcnet_research.train.trainer:run",
        help="train a genotype on CamVid (SGD poly, OHEM CE; resumable, torchrun DDP)",
        description="The paper's recipe (§IV-A) from scratch: SGD + poly LR, OHEM "
        "cross-entropy with void ignored, random flip / scale 0.5-2.0 / crop; val mIoU every "
        "--eval-every epochs; OUT/last.pt each epoch, OUT/best.pt on a new best. Settings "
        "come from --config (JSON of TrainConfig fields) and the flags below override them. "
        "Same options as `python -m lgcnet_research.train` (use that under torchrun).",
        epilog="example: lgcnet train --config configs/train/searched_cpu.json --resume")
