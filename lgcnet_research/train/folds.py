"""Sequence-held-out folds of CamVid's 468 labelled frames (train + val), the yardstick that
generalises like CamVid's test split.

CamVid's val is a clip cut from the middle of drive 0016E5, whose other frames are in train:
its frames are neighbours of training frames, so val mIoU measures memory, not
generalisation. A fold instead holds out one whole drive (fold C: half of one) and trains
on the rest:

    fold A: hold out drive 0006R0 (101 frames), train on 0001TP + 0016E5 (367 frames)
    fold B: hold out drive 0001TP (62 frames, dusk), train on 0006R0 + 0016E5 (406 frames)
    fold C: hold out the later half of 0001TP (31 frames), train on the rest (437 frames)
    all:    train on all 468 frames (what a shipped model is trained on); evaluated on val,
            which it contains, so its number is a sanity check and nothing more

A recipe is judged on folds A and B pooled. Fold C checks what fold B leaves out: CamVid's
test split holds 0001TP's next 62 frames, which follow the drive's training frames, so a
shipped model has seen the dusk drive's first half; fold B has not.

A frame's drive is its file name's prefix (`0006R0_f01230.jpg` -> `0006R0`); within a drive,
name order is frame order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lgcnet_deploy.core.classes import CAMVID, Dataset
from lgcnet_deploy.core.data import CamVid


@dataclass(frozen=True)
class HeldOut:
    """The frames a fold holds out: drive `drive`'s, or only their later half in frame order."""

    drive: str
    later_half: bool = False

    def __str__(self) -> str:
        return f"the later half of {self.drive}" if self.later_half else self.drive


FOLDS: dict[str, HeldOut] = {"A": HeldOut("0006R0"), "B": HeldOut("0001TP"),
                             "C": HeldOut("0001TP", later_half=True)}
POOLED_FOLDS: tuple[str, ...] = ("A", "B")  # the folds a recipe's pooled mIoU sums
CHECK_FOLDS: tuple[str, ...] = tuple(f for f in FOLDS if f not in POOLED_FOLDS)  # shown apart
ALL = "all"
FOLD_CHOICES: tuple[str, ...] = (*FOLDS, ALL)
LABELLED_SPLITS = ("train", "val")


class FoldError(ValueError):
    """A fold name, or a checkpoint evaluated on a fold it was trained on."""


def drive_of(path: str | Path) -> str:
    """The CamVid drive (sequence) a frame comes from: its file name up to the first `_`."""
    return Path(path).name.split("_", 1)[0]


@dataclass(frozen=True)
class Frames:
    """A named list of labelled CamVid frames, indexable like `core.data.CamVid`:
    `frames[i]` is (BGR uint8 HxWx3, uint8 HxW label)."""

    name: str
    refs: tuple[tuple[CamVid, int], ...]
    dataset: Dataset = CAMVID

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        split, j = self.refs[i]
        return split[j]

    @property
    def images(self) -> list[Path]:
        return [split.images[j] for split, j in self.refs]

    @property
    def labels(self) -> list[Path]:
        return [split.labels[j] for split, j in self.refs]

    def drives(self) -> dict[str, int]:
        """Frames per drive, in name order."""
        counts: dict[str, int] = {}
        for path in sorted(self.images):
            counts[drive_of(path)] = counts.get(drive_of(path), 0) + 1
        return counts


def _pool(root: str | Path | None) -> Iterator[tuple[CamVid, int]]:
    for name in LABELLED_SPLITS:
        split = CamVid(name, root)
        yield from ((split, j) for j in range(len(split)))


def fold_frames(fold: str, root: str | Path | None = None) -> tuple[Frames, Frames]:
    """(training frames, evaluation frames) of `fold` (one of FOLD_CHOICES)."""
    if fold not in FOLD_CHOICES:
        raise FoldError(f"unknown fold {fold!r}: choose one of {', '.join(FOLD_CHOICES)}")
    pool = list(_pool(root))
    if fold == ALL:
        val = tuple(ref for ref in pool if ref[0].split == "val")
        return Frames("all", tuple(pool)), Frames("val (inside the training frames)", val)
    held = FOLDS[fold]
    of_drive = sorted((ref for ref in pool if drive_of(ref[0].images[ref[1]]) == held.drive),
                      key=lambda ref: ref[0].images[ref[1]].name)
    if not of_drive:
        raise FoldError(f"fold {fold}: no frame of drive {held.drive} under {pool[0][0].root}; "
                        f"the folds need CamVid's train and val frames with their original names")
    chosen = set(of_drive[len(of_drive) // 2:] if held.later_half else of_drive)
    train = tuple(ref for ref in pool if ref not in chosen)  # pool order: batches stay as they were
    test = tuple(ref for ref in pool if ref in chosen)
    return Frames(f"fold {fold} train", train), Frames(f"fold {fold} held-out {held}", test)


def class_frequencies(labels: Iterable[np.ndarray], num_classes: int,
                      ignore_index: int) -> np.ndarray:
    """Each class's share of the labelled (non-void) pixels of `labels` (label maps)."""
    counts = np.zeros(num_classes, np.int64)
    for label in labels:
        counts += np.bincount(label[label != ignore_index].ravel(),
                              minlength=num_classes)[:num_classes]
    return counts / max(int(counts.sum()), 1)


def inverse_log_weights(frequencies: np.ndarray, c: float = 1.10) -> np.ndarray:
    """Class weights 1 / ln(c + p) (ENet's rule; c = 1.10 as in CGNet's CamVid training):
    rare classes (pole, sign, pedestrian, bicyclist) weigh up to ~10x, common ones ~2-3x."""
    return 1.0 / np.log(c + frequencies)
