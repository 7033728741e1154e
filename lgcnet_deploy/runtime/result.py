"""`Result`: one frame's segmentation as the Segmenter returns it, with what people do next:
per-class masks, probabilities (models exported with logits), a plot with the class legend,
a saved PNG, a JSON summary. Class names and colours come from the model's metadata, which
takes them from `core/classes.py`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.runtime.drawing import annotate, write_image, write_palette_png

# `save` writes the class-id mask to lossless formats and the overlay to lossy ones (JPEG would
# blur class ids into each other).
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
PLOT_SUFFIXES = (".jpg", ".jpeg", ".webp")


@dataclass(repr=False, eq=False)
class Result:
    """One frame's segmentation: `.mask` (uint8 class ids at the frame's size), `.speed` (ms
    per stage) and, for a model that outputs logits, `.probs` / `.confidence`."""

    frame: np.ndarray
    mask: np.ndarray
    meta: ModelMeta
    speed: dict[str, float] = field(default_factory=dict)
    model: str = ""  # the model file's name
    # logits (C, h, w) of the frame's own region of the model input; None for class-map models
    scores: np.ndarray | None = None

    @property
    def names(self) -> dict[int, str]:
        """Class id -> name."""
        return dict(enumerate(self.meta.classes))

    @property
    def masks(self) -> np.ndarray:
        """(num_classes, H, W) bool: one mask per class id."""
        ids = np.arange(self.meta.num_classes, dtype=self.mask.dtype)
        return self.mask[None] == ids[:, None, None]

    @cached_property
    def probs(self) -> np.ndarray | None:
        """(num_classes, H, W) float32 softmax probabilities at the frame's size (each pixel
        takes its model pixel's, as the mask does), or None for a class-map model (re-export
        with `lgcnet export --output-kind logits`)."""
        if self.scores is None:
            return None
        e = np.exp(self.scores - self.scores.max(0, keepdims=True))
        p = (e / e.sum(0, keepdims=True)).astype(np.float32)
        return _to_size(p, self.mask.shape)

    @cached_property
    def confidence(self) -> np.ndarray | None:
        """(H, W) float32 probability of each pixel's class, or None for a class-map model."""
        if self.scores is None:
            return None
        low = 1.0 / np.exp(self.scores - self.scores.max(0, keepdims=True)).sum(0)
        return _to_size(low.astype(np.float32)[None], self.mask.shape)[0]

    def colorize(self) -> np.ndarray:
        """The class map painted with the model's palette (BGR uint8, HxWx3)."""
        return self.meta.dataset_info.palette_bgr()[self.mask]

    def overlay(self, alpha: float = 0.5) -> np.ndarray:
        """The frame blended with the class map in the overlay colours, which tell
        neighbouring classes apart (`Dataset.overlay_bgr`); alpha = weight of the colours."""
        if not 0.0 <= alpha <= 1.0:
            raise BadInputError(f"alpha must be in [0, 1], got {alpha}")
        colours = self.meta.dataset_info.overlay_bgr()[self.mask]
        return cv2.addWeighted(self.frame, 1.0 - alpha, colours, alpha, 0.0)

    def plot(self, alpha: float = 0.5, legend: bool = True, fps: float | None = None
             ) -> np.ndarray:
        """The overlay (BGR uint8, the frame's size), with the legend of the classes present
        if `legend` and the FPS if given."""
        image = self.overlay(alpha)
        return annotate(image, self.meta, fps, self.mask) if legend or fps else image

    def class_fractions(self) -> dict[str, float]:
        """Share of the frame's pixels per class."""
        counts = np.bincount(self.mask.ravel(), minlength=self.meta.num_classes)
        return {n: float(c) / self.mask.size for n, c in zip(self.meta.classes, counts)}

    def save(self, path: str | Path, kind: str | None = None) -> Path:
        """Write the class-id mask (kind "mask", the default for .png/.bmp/.tif; a .png is
        indexed: its pixels are the class ids, shown in the dataset's palette) or the
        overlay with its legend, `plot()` (kind "overlay", the default for .jpg/.webp). The
        file appears only when complete."""
        suffix = Path(path).suffix.lower()
        if kind is None:
            kind = "mask" if suffix in MASK_SUFFIXES else "overlay"
        if kind not in ("mask", "overlay"):
            raise BadInputError(f"kind must be 'mask' or 'overlay', got {kind!r}")
        lossless = kind == "overlay" or suffix in MASK_SUFFIXES
        if suffix not in MASK_SUFFIXES + PLOT_SUFFIXES or not lossless:
            raise BadInputError(f"{path}: save a mask as {', '.join(MASK_SUFFIXES)} (lossless, "
                                f"class ids kept) or an overlay as any of those or "
                                f"{', '.join(PLOT_SUFFIXES)}")
        if kind == "mask" and suffix == ".png":
            return write_palette_png(path, self.mask, np.asarray(self.meta.palette_rgb))
        return write_image(path, self.mask if kind == "mask" else self.plot())

    def summary(self) -> dict:
        """What `to_json` writes: model, size, class fractions, ms per stage, and the mean
        confidence where the model gives one."""
        out = {"model": self.model, "genotype": self.meta.genotype_hash,
               "shape": list(self.mask.shape),
               "classes": {n: round(f, 6) for n, f in self.class_fractions().items()},
               "speed_ms": {k: round(v, 3) for k, v in self.speed.items()}}
        if self.confidence is not None:
            out["mean_confidence"] = round(float(self.confidence.mean()), 6)
        return out

    def to_json(self, indent: int | None = None) -> str:
        """`summary()` as JSON."""
        return json.dumps(self.summary(), indent=indent)

    def __repr__(self) -> str:
        top = sorted(self.class_fractions().items(), key=lambda kv: -kv[1])[:3]
        classes = ", ".join(f"{n} {f:.0%}" for n, f in top if f > 0)
        h, w = self.mask.shape
        ms = sum(self.speed.values())
        return f"Result({h}x{w}, {self.model or 'model'}: {classes}; {ms:.1f} ms)"


def _to_size(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) maps resized (nearest, as masks are) to (C, *size)."""
    if maps.shape[1:] == tuple(size):
        return maps
    hwc = np.ascontiguousarray(maps.transpose(1, 2, 0))
    out = cv2.resize(hwc, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return out.reshape(*size, -1).transpose(2, 0, 1)
