"""Metadata carried by every artifact (checkpoint, ONNX metadata_props, engine sidecar)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from lgcnet_deploy.core.classes import DATASETS, DEFAULT_INPUT_SIZE, MEAN_RGB, STD_RGB, Dataset

# Input formats a model can take; the Segmenter prepares frames for either.
INPUT_UINT8_NHWC_BGR = "uint8_nhwc_bgr"  # an OpenCV frame as is; normalisation in the graph
INPUT_FLOAT_NCHW_RGB = "float32_nchw_rgb"  # normalised (x/255 - mean) / std, RGB
INPUT_FORMATS = (INPUT_UINT8_NHWC_BGR, INPUT_FLOAT_NCHW_RGB)
# Output kinds: per-class logits (N, C, H, W) or an in-graph argmax class map (N, H, W).
OUTPUT_LOGITS = "logits"
OUTPUT_ARGMAX = "argmax"
OUTPUT_KINDS = (OUTPUT_LOGITS, OUTPUT_ARGMAX)


def read_json(path: Path, error: type[Exception]) -> Any:
    """Parse a JSON file, raising `error` naming the file when it is not valid JSON."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON ({e})") from e


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (artifact provenance: ONNX and engine hashes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class MetadataError(ValueError):
    """An artifact's metadata is missing or inconsistent."""


@dataclass(frozen=True)
class ModelMeta:
    """What a model file holds, beyond its weights."""

    classes: tuple[str, ...]
    palette_rgb: tuple[tuple[int, int, int], ...]
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE  # (H, W) the model expects
    mean_rgb: tuple[float, float, float] = MEAN_RGB
    std_rgb: tuple[float, float, float] = STD_RGB
    genotype_hash: str = ""
    genotype: dict[str, Any] = field(default_factory=dict, compare=False)
    input_format: str = INPUT_FLOAT_NCHW_RGB
    output_kind: str = OUTPUT_LOGITS
    precision: str = "fp32"
    dataset: str = "camvid"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def for_dataset(cls, dataset: Dataset, **kw: Any) -> ModelMeta:
        return cls(classes=dataset.classes, palette_rgb=dataset.palette_rgb, dataset=dataset.name,
                   **kw)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def replace(self, **kw: Any) -> ModelMeta:
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMeta:
        known = {f.name for f in fields(cls)}
        missing = {"classes", "palette_rgb"} - set(d)
        if missing:
            raise MetadataError(f"model metadata lacks {sorted(missing)}; re-export the model "
                                f"with `lgcnet export`")
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("classes", "input_size", "mean_rgb", "std_rgb"):
            if k in kw:
                kw[k] = tuple(kw[k])
        kw["palette_rgb"] = tuple(tuple(c) for c in kw["palette_rgb"])
        meta = cls(**kw)
        if meta.input_format not in INPUT_FORMATS or meta.output_kind not in OUTPUT_KINDS:
            raise MetadataError(f"unknown input_format/output_kind {meta.input_format!r}/"
                                f"{meta.output_kind!r}")
        return meta

    # ONNX metadata_props hold strings: one JSON value per key, prefixed to avoid clashes.
    def to_props(self) -> dict[str, str]:
        return {f"lgcnet.{k}": json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMeta:
        d = {k.removeprefix("lgcnet."): json.loads(v) for k, v in props.items()
             if k.startswith("lgcnet.")}
        return cls.from_dict(d)

    @property
    def dataset_info(self) -> Dataset:
        return DATASETS.get(self.dataset) or Dataset(self.dataset, self.classes,
                                                     self.palette_rgb, 255)
