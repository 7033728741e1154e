"""The training recipe's settings (`lgcnet_research.base.settings` style), torch-free so that
`lgcnet train -h` stays fast. Defaults are the recipe behind the shipped models (paper §IV-A,
from scratch): SGD momentum 0.9 + poly LR from 0.02, OHEM CE, flip / scale 0.5-2.0 / crop.
`model lraspp_mbv3_large` trains the LR-ASPP peer with the same data, loss, schedule,
augmentation and switches. The GPU switches (amp, channels_last, device_data, eval_every_s,
time_limit) are off by default and run on the CPU too, so the tests cover the code path a GPU
run takes."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

from lgcnet_deploy.core.classes import DEFAULT_INPUT_SIZE
from lgcnet_research.base.settings import Settings
from lgcnet_research.train.folds import FOLD_CHOICES

# the teachers are train.teacher.TEACHERS (this module stays torch-free)
MODELS = ("lgcnet", "lraspp_mbv3_large", "effnet_lite0_seg", "effnet_lite1_seg", "effnet_lite2_seg")
CLASS_WEIGHTS = ("none", "inverse_log")
DISTILL_KINDS = ("pixel", "channel")


@dataclass
class TrainConfig(Settings):
    KIND: ClassVar[str] = "training"
    HELP: ClassVar[dict[str, str]] = {
        "model": "lgcnet (the net of --genotype), lraspp_mbv3_large (torchvision's LR-ASPP "
                 "MobileNetV3-Large, random init: the from-scratch peer) or a teacher: "
                 "effnet_lite0_seg, effnet_lite1_seg or effnet_lite2_seg (EfficientNet-Lite0, "
                 "-Lite1 or -Lite2 from ImageNet + a segmentation head); all but lgcnet use "
                 "lgcnet_research.train.peer's checkpoint format",
        "genotype": "genotype name or JSON path (model lgcnet)",
        "imagenet_stem": "start the genotype's \"mbconv\" stem (widths 32 16 24) or its trunk "
                         "(stem lite0_s16) from EfficientNet-Lite0's ImageNet weights "
                         "(lgcnet_research.train.pretrained)",
        "fold": "train on a sequence-held-out fold of the 468 labelled frames and evaluate on "
                "what it holds out: A the drive 0006R0, B the drive 0001TP, C the later half of "
                "0001TP; all = every labelled frame (evaluated on val, which it then contains). "
                "Default: CamVid train, val",
        "out": "run folder: last.pt, best.pt, curves.png",
        "init": "start from these weights (a checkpoint of the same genotype) with a fresh "
                "optimizer and schedule (fine-tuning)",
        "init_matching": "start every tensor alike in name and shape from this checkpoint of "
                         "another genotype (e.g. the cells and fusion of a model with another "
                         "stem), the rest as initialised; a fresh optimizer and schedule",
        "epochs": "length of the poly schedule",
        "stop_after": "stop this run after N more epochs (resume later with --resume)",
        "batch": "per process",
        "crop": "train crop H W",
        "lr": "poly base LR (paper: 0.01 after ImageNet pretraining; from scratch 0.02)",
        "warmup_epochs": "ramp the LR linearly from ~0 over the first N epochs' steps (fresh "
                         "layers, a new head or a warm start with re-initialised layers "
                         "otherwise take the full LR at once); 0: none",
        "finish_epochs": "train the last N epochs on finish_crop at finish_scale_range (full "
                         "frames: a global-pool edge then sees the extent it sees at test)",
        "finish_crop": "crop H W of the finishing epochs",
        "finish_scale_range": "random scale range of the finishing epochs",
        "scale_range": "random scale range of the crops",
        "input_size": "H W the net sees a frame at, in evaluation and in the exported model "
                      "(its metadata's input size; the Segmenter resizes frames to it): "
                      "CamVid's frames are 360 480; 720 960 is the paper's CamVid setting, "
                      "where thin classes span twice the pixels (train it with crops from "
                      "frames scaled about 2x: scale_range, finish_scale_range)",
        "exposure_target": "brighten each frame darker than this mean luminance (0-1) to it "
                           "by a gamma, in training, in evaluation and in the exported model "
                           "(its metadata: the Segmenter applies it; lgcnet_deploy.core."
                           "exposure); e.g. 0.45, for drives at dusk; default: frames as they "
                           "come",
        "class_weights": "none, or inverse_log: weight each class 1/ln(1.10 + p) by its pixel "
                         "share p in the training frames (CGNet's CamVid rule)",
        "rare_crop": "chance (0-1) that a training crop is placed on a rare class: a class of "
                     "the frame drawn with weight 1/its pixel share, then one of its pixels, "
                     "put at a random place in the crop (poles, signs, riders in more crops; "
                     "0: crops anywhere)",
        "photometric": "random brightness, contrast, saturation, hue, gamma, blur and noise",
        "teacher": "distil from this research checkpoint (the teacher: train/teacher.py; "
                   "trained on frames of the same fold): its soft labels join the loss",
        "teacher_targets": "distil from a teacher's cached logits instead (a folder that "
                           "python -m lgcnet_research.train.targets wrote for these training "
                           "frames), warped to each crop's view: no teacher runs in training",
        "distill": "weight α of the teacher's soft labels: (1 - α)·OHEM + α·T²·KL",
        "distill_temperature": "softmax temperature T of the distillation",
        "distill_kind": "pixel: KL between class distributions at every labelled pixel; "
                        "channel: channel-wise distillation (Shu et al., ICCV 2021), KL between "
                        "each class's distribution over the crop's positions, all pixels "
                        "(the paper: T 4, loss weight 3 beside CE on Cityscapes logits)",
        "wd": "weight decay of conv and linear weights (BatchNorm and biases get none)",
        "aux_weight": "deep supervision: 1x1 classifiers on the fusion cell's stride-8 and "
                      "-16 inputs, each with this weight in the loss (training only; 0: none)",
        "detail_weight": "detail guidance (STDC, Fan et al., CVPR 2021): a head on the fusion "
                         "cell's stride-4 input predicts the label's boundaries, BCE + Dice "
                         "with this weight in the loss (training only; 0: none)",
        "lovasz_weight": "the Lovász-softmax loss (Berman et al., CVPR 2018), a surrogate of "
                         "each class's 1 - IoU over the batch (every second row and column "
                         "of the crop), added to the cross-entropy with this weight (0: none)",
        "ema": "keep an EMA of the weights with this decay (e.g. 0.999); checkpoints then "
               "hold the EMA weights (what is evaluated and shipped)",
        "eval_every": "val mIoU every N epochs (and at the last one)",
        "threads": "torch CPU threads",
        "data": "CamVid root",
        "limit": "use only the first TRAIN VAL frames (smoke tests)",
        "ship": "copy every new best checkpoint here (e.g. the shipped model)",
        "amp": "autocast the forward pass: bf16 (GPU; no loss scaling needed) or off",
        "channels_last": "NHWC weights and batches (what GPU Tensor Cores want)",
        "device_data": "hold the splits on the training device and augment whole batches "
                       "there (GPU: no CPU decode or resize per step)",
        "eval_every_s": "val mIoU and last.pt every N seconds instead of every eval_every "
                        "epochs / every epoch",
        "time_limit": "stop after N seconds; the poly LR then runs over the time, not the "
                      "epochs (a time-boxed run: warm-start it with --init, not --resume)",
    }
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "amp": ("off", "bf16"), "model": MODELS, "fold": FOLD_CHOICES,
        "class_weights": CLASS_WEIGHTS, "distill_kind": DISTILL_KINDS}

    model: str = "lgcnet"
    genotype: str = "default"
    imagenet_stem: bool = False
    fold: str | None = None
    out: str = "runs/train_default"
    init: str | None = None
    init_matching: str | None = None
    epochs: int = 400
    stop_after: int | None = None
    batch: int = 8
    crop: tuple[int, int] = (256, 256)
    lr: float = 0.02
    scale_range: tuple[float, float] = (0.5, 2.0)
    warmup_epochs: float = 1.0
    finish_epochs: int = 0
    finish_crop: tuple[int, int] = (360, 480)
    finish_scale_range: tuple[float, float] = (1.0, 1.25)
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    exposure_target: float | None = None
    class_weights: str = "none"
    photometric: bool = False
    rare_crop: float = 0.0
    ema: float | None = None
    aux_weight: float = 0.0
    detail_weight: float = 0.0
    lovasz_weight: float = 0.0
    teacher: str | None = None
    teacher_targets: str | None = None
    distill: float = 0.5
    distill_temperature: float = 2.0
    distill_kind: str = "pixel"
    momentum: float = 0.9
    wd: float = 5e-4
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 50_000
    eval_every: int = 5
    workers: int = 0
    threads: int | None = None
    device: str = "auto"
    seed: int = 0
    data: str | None = None
    limit: tuple[int, int] | None = None
    ship: str | None = None
    amp: str = "off"
    channels_last: bool = False
    device_data: bool = False
    eval_every_s: float | None = None
    time_limit: float | None = None


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--config`, one flag per TrainConfig field, and `--resume` (shared by
    `python -m lgcnet_research.train` and `lgcnet train`)."""
    TrainConfig.add_flags(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    return p
