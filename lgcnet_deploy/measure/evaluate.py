"""mIoU of any model file on a CamVid split, through the Segmenter (as users run it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lgcnet_deploy.core.data import CamVid
from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.core.metrics import ConfusionMatrix
from lgcnet_deploy.runtime.segmenter import Segmenter


def iou_table(per_class_iou: dict[str, float], miou: float) -> list[str]:
    """The per-class IoU lines of a report: a header, one row per class, then the mIoU."""
    rows = [f"{name:>12}  {iou * 100:6.2f}" for name, iou in per_class_iou.items()]
    return [f"{'class':>12}  {'IoU %':>6}", *rows, f"{'mIoU':>12}  {miou * 100:6.2f}"]


@dataclass
class EvalReport:
    model: str
    backend: str
    split: str
    frames: int
    miou: float
    pixel_accuracy: float
    per_class_iou: dict[str, float]
    latency_ms: dict[str, float] = field(default_factory=dict)  # mean per stage per frame

    def table(self) -> str:
        lat = ", ".join(f"{k} {v:.1f}" for k, v in self.latency_ms.items())
        return "\n".join([*iou_table(self.per_class_iou, self.miou),
                          f"pixel accuracy {self.pixel_accuracy * 100:.2f} %, {self.frames} "
                          f"frames, {self.backend}; ms/frame: {lat}"])


def evaluate(seg: Segmenter, split: str = "val", root: str | Path | None = None,
             limit: int | None = None, progress: bool = True) -> EvalReport:
    """Segment every frame of the split and score it against its label (void ignored)."""
    data = CamVid(split, root)
    cm = ConfusionMatrix(len(seg.meta.classes), data.dataset.ignore_index)
    if len(seg.meta.classes) != data.dataset.num_classes:
        raise BadInputError(f"model has {len(seg.meta.classes)} classes, CamVid has "
                            f"{data.dataset.num_classes}")
    n = len(data) if limit is None else min(limit, len(data))
    totals: dict[str, float] = {}
    for i in tqdm(range(n), desc=f"eval {split}", disable=not progress, unit="frame"):
        frame, label = data[i]
        result = seg.predict(frame)
        cm.update(result.mask, label)
        for k, v in result.speed.items():
            totals[k] = totals.get(k, 0.0) + v
    iou = cm.iou()
    return EvalReport(
        model=str(seg.backend.path), backend=seg.backend.name, split=split, frames=n,
        miou=cm.miou(), pixel_accuracy=cm.pixel_accuracy(),
        per_class_iou={c: float(np.nan_to_num(v)) for c, v in zip(seg.meta.classes, iou)},
        latency_ms={k: v / n for k, v in totals.items()})
