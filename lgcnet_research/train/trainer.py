"""Train a derived LGCNet (or the LR-ASPP peer) on CamVid (paper §IV-A recipe), resumable,
DDP-ready.

    python -m lgcnet_research.train --genotype default --out runs/train_default
    python -m lgcnet_research.train --model lraspp_mbv3_large --out runs/train_peer
    python -m lgcnet_research.train --config configs/train/searched_cpu.json --resume
    torchrun --nproc_per_node=2 -m lgcnet_research.train ...  # DDP (gloo on CPU, nccl on GPU)

SGD + poly LR, OHEM cross-entropy (void ignored), random flip / scale 0.5-2.0 / crop; val
mIoU every `eval_every` epochs; `last.pt` every epoch and `best.pt` on a new best (lgcnet
checkpoints; the peer's: lgcnet_research.train.peer); `ship` copies each new best to the model
`make demo` uses. The generalising recipe adds a fold (`--fold A`: train on all drives but one,
evaluate on that one), class weights, photometric augmentation and an EMA of the weights
(configs/train/fold_a_recipe.json); a fold run is judged by its final epoch's EMA weights
(`lgcnet folds eval OUT/last.pt`), never by a best-of-many reading.
On a GPU (configs/train/gpu_sprint.json): `--amp bf16 --channels-last --device-data` (splits
resident on the GPU, augmented there), `--eval-every-s 60`, `--time-limit SECONDS`.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.data import read_label
from lgcnet_deploy.core.exposure import check_target
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.core.metrics import ConfusionMatrix
from lgcnet_deploy.model.checkpoint import cpu_state_dict, load_checkpoint, save_checkpoint
from lgcnet_deploy.model.genotype import Genotype, load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_research.base import distributed as dist
from lgcnet_research.base.machine import device_name, keep_freed_memory
from lgcnet_research.base.plots import plot_curves
from lgcnet_research.train.config import TrainConfig, add_arguments
from lgcnet_research.train.data import (
    CamVidTorch,
    DeviceBatches,
    DeviceCamVid,
    RareCrop,
    frames_of,
)
from lgcnet_research.train.ema import WeightEma
from lgcnet_research.train.folds import class_frequencies, fold_frames, inverse_log_weights
from lgcnet_research.train.losses import (
    DeeplySupervised,
    DetailLoss,
    DistillationLoss,
    OhemCrossEntropy,
    Supervised,
    lovasz_softmax,
)
from lgcnet_research.train.peer import (
    load_peer,
    load_peer_weights,
    peer_meta,
    research_net,
    save_peer_checkpoint,
)
from lgcnet_research.train.pretrained import imagenet_source, load_imagenet_stem
from lgcnet_research.train.targets import load_targets
from lgcnet_research.train.teacher import TEACHERS


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def poly_lr(base: float, step: int, total: int, power: float = 0.9) -> float:
    return base * (1 - min(step, total) / total) ** power


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up: (step + 1) / warmup_steps over the first steps, then 1."""
    return 1.0 if step >= warmup_steps else (step + 1) / warmup_steps


def parameter_groups(net: torch.nn.Module, wd: float) -> list[dict[str, Any]]:
    """Weight decay on conv and linear weights only: BatchNorm's scales and shifts and every
    bias (the 1-D tensors) get none; decaying them pulls BN scales to zero for no gain."""
    decay = [p for p in net.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in net.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


@torch.no_grad()
def at_input_size(net: torch.nn.Module,
                  input_size: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """net(x) as the exported model runs it: frames resized (bilinear) to the model's input
    size, its logits resized back to the frames' size; net itself where the two agree."""
    size = tuple(input_size)

    def forward(x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == size:
            return net(x)
        logits = net(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return forward


def validate(net: torch.nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
             device: torch.device,
             forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> ConfusionMatrix:
    """Confusion matrix over the whole split (summed across DDP processes), counted on
    `device`; `forward` replaces net(x) (the search evaluates its supernet as the derived
    architecture)."""
    net.eval()
    forward = forward or net
    n = CAMVID.num_classes
    cm = torch.zeros(n * n, dtype=torch.int64, device=device)
    for x, y in loader:
        pred, y = forward(x.to(device)).argmax(1), y.to(device)
        keep = y != CAMVID.ignore_index
        cm += torch.bincount(y[keep] * n + pred[keep], minlength=n * n)
    dist.all_reduce_sum_(cm)
    out = ConfusionMatrix(n, CAMVID.ignore_index)
    out.matrix = cm.view(n, n).cpu().numpy()
    net.train()
    return out


def run_record(history: list[dict[str, Any]]) -> dict[str, Any]:
    """What a checkpoint's provenance says of its own run (a lineage reads it): the epochs run
    so far and the val mIoU at every validated epoch."""
    return {"epochs_run": history[-1]["epoch"] if history else 0,
            "val_history": [[h["epoch"], round(h["val_miou"], 4)] for h in history
                            if "val_miou" in h]}


def pretraining(model: str, imagenet_stem: bool, genotype: Genotype | None = None) -> str:
    """What a run starts from before CamVid, and where those weights came from."""
    if imagenet_stem and genotype is not None and genotype.has_trunk:
        return (f"ImageNet: the {genotype.stem} trunk from EfficientNet-Lite0's layers to "
                f"stride 16 ({imagenet_source()})")
    if imagenet_stem:
        return (f"ImageNet: the mbconv stem from EfficientNet-Lite0's first layers "
                f"({imagenet_source()})")
    if model in TEACHERS:
        variant = TEACHERS[model]
        return (f"ImageNet: EfficientNet-{variant.capitalize()} backbone from "
                f"{imagenet_source(variant)}")
    return "none (from scratch)"


def _init_record(path: Path, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A warm start's record: its history travels on in our provenance (and fold lineage)."""
    return {"path": portable_path(path), "metrics": payload.get("metrics"),
            "provenance": payload.get("provenance"), **extra}


def training_labels(train_set: CamVidTorch | Subset | DeviceCamVid) -> Iterator[np.ndarray]:
    """The label maps of a training set as they are on disk (no augmentation; the label
    files only, no frame decoded)."""
    if isinstance(train_set, DeviceCamVid):
        yield from (label.cpu().numpy() for label in train_set.labels)
        return
    whole = train_set.dataset if isinstance(train_set, Subset) else train_set
    indices = train_set.indices if isinstance(train_set, Subset) else range(len(train_set))
    paths = whole.data.labels
    yield from (read_label(paths[i]) for i in indices)


def portable_path(path: str | Path) -> str:
    """`path` relative to the working directory (the repository, where runs start) when it
    lies inside it; else its last two parts: provenance never records a machine's layout."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(Path(*path.parts[-2:]))


class Trainer:
    """One training run in named steps: `__init__` builds the net, optimizer and data (and
    resumes or warm-starts), `train_epoch` runs one epoch, `record_epoch` validates and
    writes checkpoints; `fit` loops them until the epochs or `time_limit` run out."""

    def __init__(self, cfg: TrainConfig, resume: bool = False) -> None:
        if resume and cfg.time_limit:
            raise ValueError("a time-limited run cannot be resumed (its LR schedule ran over "
                             "its time); warm-start a new run with --init OUT/best.pt")
        if cfg.init and cfg.init_matching:
            raise ValueError("give init (a checkpoint of the same genotype) or init_matching "
                             "(another genotype's), not both")
        self.cfg = cfg
        self.out = Path(cfg.out)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.info = dist.setup(cfg.device)
        torch.manual_seed(cfg.seed + self.info.rank)
        if self.info.device.type == "cpu":
            keep_freed_memory()
        if self.info.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop shapes: pick each conv once
        self._build_net()
        if not 0 <= cfg.finish_epochs <= cfg.epochs:
            raise ValueError(f"finish_epochs must lie in 0..epochs ({cfg.epochs}), got "
                             f"{cfg.finish_epochs}")
        # what the optimizer trains: the net, and the training-only heads the recipe names
        heads = {"aux": bool(cfg.aux_weight), "detail": bool(cfg.detail_weight)}
        self.trained = self.net if not any(heads.values()) else DeeplySupervised(
            self.net, CAMVID.num_classes, **heads).to(self.info.device)
        self.opt = torch.optim.SGD(parameter_groups(self.trained, cfg.wd), lr=cfg.lr,
                                   momentum=cfg.momentum)
        self.start_epoch, self.best, self.history = 0, -1.0, []
        self.init_record: dict[str, Any] | None = None
        self.ema: WeightEma | None = None
        if resume and (self.out / "last.pt").is_file():
            self._load(self.out / "last.pt", with_state=True)
        elif cfg.init:
            self._load(Path(cfg.init), with_state=False)
        elif cfg.init_matching:
            self._load_matching(Path(cfg.init_matching))
        if cfg.ema and self.ema is None:
            self.ema = WeightEma(self.net, cfg.ema)
        self.model = DistributedDataParallel(self.trained) if self.info.enabled \
            else self.trained
        self._build_data()
        if cfg.rare_crop:
            self._augmenter().rare_crop = RareCrop(cfg.rare_crop, self.pixel_share)
        self.criterion = self._build_criterion()
        self.teacher = self._build_teacher()
        self.total_steps = cfg.epochs * len(self.loader)
        self.warmup_steps = round(cfg.warmup_epochs * len(self.loader))
        self.provenance = self._provenance()
        self.started = self.last_eval = time.time()

    def _build_net(self) -> None:
        """The net of `cfg.model`, its metadata and its checkpoint writer."""
        cfg = self.cfg
        exposure = None if cfg.exposure_target is None else check_target(cfg.exposure_target)
        if cfg.model == "lgcnet":
            self.genotype: Genotype | None = load_genotype(cfg.genotype)
            net: torch.nn.Module = LGCNet(self.genotype, CAMVID.num_classes)
            if cfg.imagenet_stem:
                load_imagenet_stem(net)
            self.meta = ModelMeta.for_dataset(CAMVID, input_size=tuple(cfg.input_size),
                                              exposure_target=exposure)
            self.save_checkpoint: Callable[..., Path] = save_checkpoint
        else:
            if cfg.imagenet_stem:
                raise ValueError(f"imagenet_stem is for model lgcnet (an \"mbconv\" stem), "
                                 f"not {cfg.model}")
            self.genotype, net = None, research_net(cfg.model, CAMVID.num_classes)
            self.meta = peer_meta(tuple(cfg.input_size), name=cfg.model).replace(
                exposure_target=exposure)
            self.save_checkpoint = save_peer_checkpoint
        self.net = net.to(self.info.device)
        if cfg.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    def _load(self, path: Path, with_state: bool) -> None:
        if self.genotype is None:
            payload = load_peer_weights(self.net, path)
        else:
            loaded, _, payload = load_checkpoint(path, genotype=self.genotype,
                                                 num_classes=CAMVID.num_classes)
            self.net.load_state_dict(loaded.state_dict())
        if not with_state:  # a warm start: its history travels on in our provenance
            self.init_record = _init_record(path, payload)
            return
        state = payload["train_state"]
        self.init_record = (payload.get("provenance") or {}).get("init")
        if "raw_state_dict" in state:  # an EMA run: the checkpoint's weights are the EMA's
            self.ema = WeightEma(self.net, self.cfg.ema or state["ema_decay"],
                                 state["ema_updates"])
            self.net.load_state_dict(state["raw_state_dict"])
        if isinstance(self.trained, DeeplySupervised):  # the heads _save kept
            if "aux_heads" in state:
                self.trained.heads.load_state_dict(state["aux_heads"])
            if "detail_head" in state and self.trained.detail is not None:
                self.trained.detail.load_state_dict(state["detail_head"])
        self.opt.load_state_dict(state["optimizer"])
        self.start_epoch, self.best = state["epoch"], state["best_miou"]
        self.history = state["history"]

    def _load_matching(self, path: Path) -> None:
        """Warm start from another genotype's checkpoint: every tensor alike in name and shape
        (e.g. the cells and fusion cell of a model with another stem)."""
        if self.genotype is None:
            raise ValueError(f"init_matching is for model lgcnet, not {self.cfg.model}")
        loaded, _, payload = load_checkpoint(path, num_classes=CAMVID.num_classes)
        own = self.net.state_dict()
        taken = {k: v for k, v in loaded.state_dict().items()
                 if k in own and own[k].shape == v.shape}
        self.net.load_state_dict(taken, strict=False)
        self.init_record = _init_record(
            path, payload, tensors=f"{len(taken)} of {len(own)} (alike in name and shape)")

    def _build_data(self) -> None:
        """Train batches (`loader`, reshuffled through `sampler.set_epoch`) and val batches."""
        cfg, info = self.cfg, self.info
        train_limit, val_limit = cfg.limit or (None, None)
        train_frames, self.val_frames = (fold_frames(cfg.fold, cfg.data) if cfg.fold
                                         else ("train", "val"))
        self.train_name = getattr(train_frames, "name", train_frames)  # "all", "fold A train"
        targets = self._load_targets(train_frames)
        if cfg.device_data:
            self.train_set = DeviceCamVid(train_frames, info.device, cfg.data, train_limit,
                                          targets, cfg.exposure_target)
            val_set = DeviceCamVid(self.val_frames, info.device, cfg.data, val_limit,
                                   exposure_target=cfg.exposure_target)
            self.loader = DeviceBatches(self.train_set, cfg.batch, tuple(cfg.crop),
                                        tuple(cfg.scale_range), shuffle=True, drop_last=True,
                                        seed=cfg.seed, rank=info.rank, world_size=info.world_size,
                                        photometric=cfg.photometric)
            self.sampler = self.loader  # reshuffles per epoch, as a DistributedSampler does
            self.val_loader = DeviceBatches(val_set, 4, rank=info.rank,
                                            world_size=info.world_size)
            return
        self.dataset = CamVidTorch(train_frames, tuple(cfg.crop), tuple(cfg.scale_range),
                                   root=cfg.data, seed=cfg.seed, photometric=cfg.photometric,
                                   targets=targets, exposure_target=cfg.exposure_target)
        self.train_set = self.dataset
        val_set = CamVidTorch(self.val_frames, crop=None, train=False, root=cfg.data,
                              exposure_target=cfg.exposure_target)
        if cfg.limit:
            self.train_set = Subset(self.train_set, range(train_limit))
            val_set = Subset(val_set, range(val_limit))
        self.sampler = DistributedSampler(self.train_set, shuffle=True,
                                          seed=cfg.seed) if info.enabled else None
        # one shuffle per epoch, seeded by (seed, epoch) in train_epoch: resumes are exact
        self.shuffle = torch.Generator()
        self.loader = DataLoader(self.train_set, cfg.batch, shuffle=self.sampler is None,
                                 sampler=self.sampler, num_workers=cfg.workers, drop_last=True,
                                 generator=self.shuffle)
        val_sampler = DistributedSampler(val_set, shuffle=False) if info.enabled else None
        self.val_loader = DataLoader(val_set, 4, sampler=val_sampler, num_workers=cfg.workers)

    def _load_targets(self, train_frames: Any) -> list[torch.Tensor] | None:
        """A teacher's cached logits of the training frames, when the recipe names them."""
        if not self.cfg.teacher_targets:
            return None
        limit = self.cfg.limit[0] if self.cfg.limit else None
        images = frames_of(train_frames, self.cfg.data).images[:limit]
        targets, manifest = load_targets(self.cfg.teacher_targets, images,
                                         self.cfg.exposure_target)
        self.teacher_record = {"targets": portable_path(self.cfg.teacher_targets), **manifest}
        return targets

    def _build_teacher(self) -> torch.nn.Module | None:
        """The frozen teacher whose soft labels join the loss, when the recipe names one (or
        the distillation loss alone when its targets are cached)."""
        cfg = self.cfg
        if cfg.teacher and cfg.teacher_targets:
            raise ValueError("give teacher (run it at every step) or teacher_targets (its "
                             "cached logits), not both")
        if cfg.teacher or cfg.teacher_targets:
            self.criterion = DistillationLoss(self.criterion, CAMVID.ignore_index, cfg.distill,
                                              cfg.distill_temperature, cfg.distill_kind)
        if not cfg.teacher:
            return None
        teacher, payload = load_peer(cfg.teacher)
        prov = payload.get("provenance") or {}
        self.teacher_record = {"path": portable_path(cfg.teacher), "model": payload["model"],
                               "metrics": payload.get("metrics"), "provenance": prov}
        return teacher.requires_grad_(False).to(self.info.device)

    def _build_criterion(self) -> OhemCrossEntropy:
        """OHEM CE, class-weighted by the training frames' pixel shares when asked."""
        cfg, weight = self.cfg, None
        if cfg.class_weights == "inverse_log":
            weight = torch.tensor(inverse_log_weights(self.pixel_share), dtype=torch.float32)
            self.class_weight_record = dict(zip(CAMVID.classes, weight.tolist()))
        self.hard_criterion = OhemCrossEntropy(CAMVID.ignore_index, cfg.ohem_thresh,
                                               cfg.ohem_min_kept, weight).to(self.info.device)
        self.detail_criterion = DetailLoss(CAMVID.ignore_index)
        return self.hard_criterion

    @functools.cached_property
    def pixel_share(self) -> np.ndarray:
        """Each class's share of the training frames' labelled pixels (class weights and
        rare-class crops)."""
        return class_frequencies(training_labels(self.train_set), CAMVID.num_classes,
                                 CAMVID.ignore_index)

    def _provenance(self) -> dict[str, Any]:
        device, recipe = self.info.device, self.cfg.to_dict()
        for key in ("out", "init", "init_matching", "data", "teacher_targets"):  # no layout
            recipe[key] = recipe[key] and portable_path(recipe[key])
        return {"recipe": recipe, "model": self.cfg.model,
                "genotype_hash": self.genotype.hash if self.genotype else None,
                "git": git_commit(), "world_size": self.info.world_size,
                "hardware": torch.cuda.get_device_name(device) if device.type == "cuda"
                else device_name("torch-cpu"), "torch": str(torch.__version__),
                "data": f"CamVid {self.train_name} ({len(self.train_set)} frames)",
                "evaluated_on": getattr(self.val_frames, "name", self.val_frames),
                "pretraining": pretraining(self.cfg.model, self.cfg.imagenet_stem, self.genotype),
                **({"class_weights": self.class_weight_record}
                   if self.cfg.class_weights != "none" else {}),
                **({"teacher": self.teacher_record}
                   if self.cfg.teacher or self.cfg.teacher_targets else {}),
                **({"init": self.init_record} if self.init_record else {})}

    @property
    def end_epoch(self) -> int:
        cfg = self.cfg
        if cfg.stop_after is None:
            return cfg.epochs
        return min(cfg.epochs, self.start_epoch + cfg.stop_after)

    def _lr(self, step: int) -> float:
        """Poly LR over the steps, or over the seconds of a time-limited run, times the
        linear warm-up of the first steps."""
        if self.cfg.time_limit:
            lr = poly_lr(self.cfg.lr, time.time() - self.started, self.cfg.time_limit)
        else:
            lr = poly_lr(self.cfg.lr, step, self.total_steps)
        return lr * warmup_factor(step, self.warmup_steps)

    def _set_phase(self, epoch: int) -> None:
        """The augmentation of `epoch`: the recipe's crops, or in the last `finish_epochs`
        the finishing crop and scales (full frames)."""
        cfg = self.cfg
        finishing = epoch >= cfg.epochs - cfg.finish_epochs
        crop = tuple(cfg.finish_crop if finishing else cfg.crop)
        scales = tuple(cfg.finish_scale_range if finishing else cfg.scale_range)
        augmenter = self._augmenter()
        augmenter.crop, augmenter.scale_range = crop, scales

    def _augmenter(self) -> CamVidTorch | DeviceBatches:
        """What augments the training frames: the dataset, or on the device its batches."""
        return self.loader if isinstance(self.loader, DeviceBatches) else self.dataset

    def _step(self, batch: Sequence[torch.Tensor], lr: float) -> torch.Tensor:
        """One SGD step on a batch (images, labels[, cached teacher logits]); returns the loss
        (on the device: no sync here)."""
        for group in self.opt.param_groups:
            group["lr"] = lr
        device = self.info.device
        x, y, *cached = (t.to(device, non_blocking=True) for t in batch)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, torch.bfloat16, enabled=self.cfg.amp == "bf16"):
            if self.teacher is not None:
                with torch.no_grad():
                    cached = [self.teacher(x)]
            out = self.model(x)
            if isinstance(self.trained, DeeplySupervised):
                loss, logits = self._heads_loss(out, y), out.logits
            else:
                loss, logits = 0.0, out
            loss = loss + self.criterion(logits, y, *cached)
            if self.cfg.lovasz_weight:
                loss = loss + self.cfg.lovasz_weight * lovasz_softmax(logits, y,
                                                                      CAMVID.ignore_index)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.net)
        return loss.detach()

    def _heads_loss(self, out: Supervised, y: torch.Tensor) -> torch.Tensor | float:
        """The training-only heads' share of the loss: the auxiliary classifiers' OHEM CE
        (upsampled to the labels) and detail guidance's BCE + Dice, each with its weight."""
        loss: torch.Tensor | float = 0.0
        if out.aux:
            loss = self.cfg.aux_weight * sum(
                self.hard_criterion(F.interpolate(a, size=y.shape[-2:], mode="bilinear",
                                                  align_corners=False), y) for a in out.aux)
        if out.detail is not None:
            loss = loss + self.cfg.detail_weight * self.detail_criterion(out.detail, y)
        return loss

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the train split; returns the epoch's record (loss, lr, seconds)."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        else:
            self.shuffle.manual_seed(self.cfg.seed * 1_000_003 + epoch)
        if hasattr(self, "dataset"):
            self.dataset.set_epoch(epoch)
        self._set_phase(epoch)
        self.model.train()
        t0, losses, lr = time.time(), [], self.cfg.lr
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                   disable=not self.info.is_main, leave=False, mininterval=10)
        for i, batch in enumerate(bar):
            if self.cfg.time_limit and time.time() - self.started > self.cfg.time_limit:
                break  # slow hardware: the box ends inside an epoch
            lr = self._lr(epoch * len(self.loader) + i)
            losses.append(self._step(batch, lr))
            if i % 10 == 0:  # .item() waits for the GPU: not every step
                bar.set_postfix(loss=f"{losses[-1].item():.3f}", lr=f"{lr:.4f}")
        mean = dist.all_reduce_mean(torch.stack(losses).float().mean())
        return {"epoch": epoch + 1, "loss": float(mean), "lr": lr, "seconds": time.time() - t0}

    def out_of_time(self, record: dict[str, Any]) -> bool:
        """Would another epoch like the last one overrun `time_limit`? (Every rank agrees.)"""
        if not self.cfg.time_limit:
            return False
        late = time.time() - self.started + record["seconds"] > self.cfg.time_limit
        return self._agree(late)

    def _agree(self, flag: bool) -> bool:
        """True on every rank when it is true on any (ranks' clocks differ)."""
        if not self.info.enabled:
            return flag
        return bool(dist.all_reduce_mean(torch.tensor(float(flag), device=self.info.device)) > 0)

    def record_epoch(self, record: dict[str, Any], final: bool = False) -> None:
        """Validate when due, then (main process) log and write last/best/shipped/curves.
        Due: every `eval_every` epochs, or every `eval_every_s` seconds, and at the end."""
        epoch, every_s = record["epoch"], self.cfg.eval_every_s
        final = final or epoch == self.end_epoch
        due = (time.time() - self.last_eval >= every_s) if every_s else (
            epoch % self.cfg.eval_every == 0)
        if final or self._agree(due):
            cm = validate(self.evaluated_net, self.val_loader, self.info.device,
                          at_input_size(self.evaluated_net, self.meta.input_size))
            record.update(val_miou=cm.miou(), val_iou=[float(v) for v in cm.iou()])
            self.last_eval = time.time()
        self.history.append(record)
        if self.info.is_main:
            print(json.dumps(record), flush=True)
            if "val_miou" in record or not every_s:  # time-based: last.pt with each val
                self._save(record)
        dist.barrier()

    @property
    def evaluated_net(self) -> torch.nn.Module:
        """What is validated and saved: the EMA weights when the run keeps them."""
        return self.net if self.ema is None else self.ema.module

    def _save(self, record: dict[str, Any]) -> None:
        improved = record.get("val_miou", -1.0) > self.best
        self.best = max(self.best, record.get("val_miou", -1.0))
        metrics = {"val_miou": self.best, "epoch": record["epoch"]}
        state = {"optimizer": self.opt.state_dict(), "epoch": record["epoch"],
                 "best_miou": self.best, "history": self.history}
        if self.ema is not None:
            state.update(raw_state_dict=cpu_state_dict(self.net), ema_decay=self.ema.decay,
                         ema_updates=self.ema.updates)
        if isinstance(self.trained, DeeplySupervised):
            state.update(aux_heads=cpu_state_dict(self.trained.heads))
            if self.trained.detail is not None:
                state.update(detail_head=cpu_state_dict(self.trained.detail))
        provenance = {**self.provenance, **run_record(self.history)}
        self.save_checkpoint(self.out / "last.pt", self.evaluated_net, self.meta, provenance,
                             metrics, state)
        if improved:
            iou = dict(zip(CAMVID.classes, record["val_iou"]))
            seconds = round(time.time() - self.started, 1)
            self.save_checkpoint(self.out / "best.pt", self.evaluated_net, self.meta, provenance,
                                 {**metrics, "val_per_class_iou": iou, "train_seconds": seconds})
            if self.cfg.ship:  # atomic: readers of the shipped model never see half a file
                ship = Path(self.cfg.ship)
                shutil.copyfile(self.out / "best.pt", ship.with_suffix(".tmp"))
                ship.with_suffix(".tmp").replace(ship)
        if "val_miou" in record:  # matplotlib costs more than a GPU epoch: redraw with new points
            plot_curves(self.history, self.out / "curves.png")

    def fit(self, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train to the end of the epochs or of `time_limit` (counted from construction, so
        loading the data is inside the box); `on_epoch` sees each epoch's record."""
        self.out.mkdir(parents=True, exist_ok=True)
        done = self.start_epoch
        for epoch in range(self.start_epoch, self.end_epoch):
            record = self.train_epoch(epoch)
            last = self.out_of_time(record)
            self.record_epoch(record, final=last)
            done = epoch + 1
            if on_epoch is not None:
                on_epoch(record)
            if last:
                break
        dist.cleanup()
        return {"best_miou": self.best, "epochs": done}


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run (or continue) a training run; returns the best val mIoU and the last epoch."""
    return Trainer(cfg, resume=resume).fit()


def run(args: argparse.Namespace) -> int:
    """Train with parsed options and print the outcome (the CLI entry point)."""
    result = train(TrainConfig.from_args(args), resume=args.resume)
    print(f"done: best val mIoU {result['best_miou']:.4f} after {result['epochs']} epochs")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lgcnet_research.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return run(add_arguments(p).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
