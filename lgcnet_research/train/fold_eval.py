"""The fixed-epoch evaluation of a fold run: a checkpoint's weights (the EMA's, when its run
kept one) scored on the drive its fold held out, with per-class IoU.

    lgcnet folds eval runs/fold_a_recipe/last.pt --fold A

A checkpoint that saw the held-out drive in training is refused: its number would measure
memory, as CamVid's val does. The run's own last epoch is reported beside it, so a reader can
tell a final-epoch number from a best-of-many reading. The report keeps the held-out confusion
matrix, so folds can be pooled (`python -m experiments.fold_table` sums A's and B's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lgcnet_deploy.core.classes import CAMVID, DEFAULT_INPUT_SIZE
from lgcnet_deploy.core.exposure import check_target
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.measure.evaluate import iou_table
from lgcnet_deploy.model.checkpoint import CheckpointError, load_checkpoint
from lgcnet_research.train.data import CamVidTorch
from lgcnet_research.train.folds import ALL, FOLDS, FoldError, fold_frames
from lgcnet_research.train.peer import load_peer
from lgcnet_research.train.trainer import at_input_size, validate


@dataclass
class FoldReport:
    checkpoint: str
    fold: str
    held_out_drive: str
    frames: int
    epoch: int | None
    epochs_planned: int | None
    ema: bool
    miou: float
    per_class_iou: dict[str, float]
    # held-out pixels, rows the label's class, columns the prediction's (CAMVID.classes
    # order, void left out): what pooling folds sums
    confusion: list[list[int]]
    # the exposure normalisation the held-out frames went through (core.exposure); None: none
    exposure_target: float | None = None

    def table(self) -> str:
        epoch = f"epoch {self.epoch} of {self.epochs_planned}" if self.epoch else "epoch ?"
        exposure = "" if self.exposure_target is None else \
            f"; frames brightened to mean luminance {self.exposure_target:g}"
        return "\n".join([
            f"fold {self.fold}: held out {self.held_out_drive}, {self.frames} frames; "
            f"{epoch}, {'EMA' if self.ema else 'raw'} weights{exposure}",
            *iou_table(self.per_class_iou, self.miou)])


def trained_fold(provenance: dict[str, Any]) -> str | None:
    """The fold a checkpoint's last run trained on (None: CamVid train, every drive)."""
    return (provenance.get("recipe") or {}).get("fold")


def check_unseen(fold: str, provenance: dict[str, Any], path: Path) -> None:
    """FoldError unless every run in the checkpoint's lineage, and every teacher it learnt
    from, trained on `fold`'s frames only."""
    pending: list[dict[str, Any]] = [provenance]
    while pending:
        record = pending.pop()
        seen = trained_fold(record)
        if seen != fold:
            what = "every labelled drive" if seen in (None, ALL) else f"fold {seen}'s frames"
            raise FoldError(f"{path} (or a run or teacher it learnt from) was trained on "
                            f"{what}, not on fold {fold}'s training frames alone: its fold "
                            f"{fold} number would not measure generalisation to "
                            f"{FOLDS[fold]}; evaluate a run trained with --fold {fold}")
        for earlier in ("init", "teacher"):
            if (record.get(earlier) or {}).get("provenance"):
                pending.append(record[earlier]["provenance"])


def load_net(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """An LGCNet checkpoint's net, or a research net's (the teacher, the peer)."""
    try:
        net, _, payload = load_checkpoint(path, num_classes=CAMVID.num_classes)
    except CheckpointError:
        net, payload = load_peer(path)
    return net, payload


def as_exported(net: torch.nn.Module,
                payload: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """`net` as its export runs it: at the input size its checkpoint's metadata names
    (`trainer.at_input_size`)."""
    return at_input_size(net, (payload.get("meta") or {}).get("input_size", DEFAULT_INPUT_SIZE))


def evaluate_fold(path: str | Path, fold: str, root: str | None = None,
                  threads: int | None = None, exposure_target: float | None = None
                  ) -> FoldReport:
    """Score checkpoint `path` on the drive `fold` holds out (`score_fold`)."""
    net, payload = load_net(Path(path))
    return score_fold(net, payload, path, fold, root, threads, exposure_target)


def score_fold(net: torch.nn.Module, payload: dict[str, Any], path: str | Path, fold: str,
               root: str | None = None, threads: int | None = None,
               exposure_target: float | None = None) -> FoldReport:
    """Score `net`, loaded with its `payload` from checkpoint `path` (`load_net`), on the
    drive `fold` holds out, its frames brightened as its metadata says (`exposure_target`
    in its place: what normalising the exposure would do for a net trained without it)."""
    if fold not in FOLDS:
        raise FoldError(f"fold {fold!r}: choose one of {', '.join(FOLDS)} (fold 'all' holds "
                        f"nothing out)")
    provenance = payload.get("provenance") or {}
    check_unseen(fold, provenance, Path(path))
    if threads:
        torch.set_num_threads(threads)
    exposure = ModelMeta.from_dict(payload["meta"], path).exposure_target \
        if exposure_target is None else check_target(exposure_target)
    _, held_out = fold_frames(fold, root)
    loader = DataLoader(CamVidTorch(held_out, crop=None, train=False, exposure_target=exposure),
                        batch_size=4)
    cm = validate(net, loader, torch.device("cpu"), as_exported(net, payload))
    recipe = provenance.get("recipe") or {}
    return FoldReport(
        checkpoint=str(path), fold=fold, held_out_drive=str(FOLDS[fold]), frames=len(held_out),
        epoch=provenance.get("epochs_run"), epochs_planned=recipe.get("epochs"),
        ema=bool(recipe.get("ema")), exposure_target=exposure, miou=cm.miou(),
        per_class_iou={c: float(np.nan_to_num(v)) for c, v in zip(CAMVID.classes, cm.iou())},
        confusion=cm.matrix.tolist())


def write_report(report: FoldReport, path: str | Path) -> None:
    Path(path).write_text(json.dumps(asdict(report), indent=2) + "\n")
