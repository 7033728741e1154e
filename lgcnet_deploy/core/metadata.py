"""Metadata carried by every artifact (checkpoint, ONNX metadata_props, engine sidecar)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from lgcnet_deploy.core.classes import DATASETS, DEFAULT_INPUT_SIZE, MEAN_RGB, STD_RGB, Dataset
from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.core.exposure import ExposureError, check_target

# Input formats a model can take; the Segmenter prepares frames for either.
INPUT_UINT8_NHWC_BGR = "uint8_nhwc_bgr"  # an OpenCV frame as is; normalisation in the graph
INPUT_FLOAT_NCHW_RGB = "float32_nchw_rgb"  # normalised (x/255 - mean) / std, RGB
INPUT_FORMATS = (INPUT_UINT8_NHWC_BGR, INPUT_FLOAT_NCHW_RGB)
# Output kinds: per-class logits (N, C, H, W) or an in-graph argmax class map (N, H, W).
OUTPUT_LOGITS = "logits"
OUTPUT_ARGMAX = "argmax"
OUTPUT_KINDS = (OUTPUT_LOGITS, OUTPUT_ARGMAX)
# Precisions an exported model or engine can have (ModelMeta.precision).
PRECISIONS = ("fp32", "fp16", "int8")


MAX_JSON_BYTES = 1 << 20  # genotypes, sidecars and configs are a few kB
MAX_JSON_DEPTH = 16  # the deepest of ours (a genotype's provenance) nests about 5 levels


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply `value` nests lists and objects, counted up to `limit + 1` (iteratively: a
    hostile file must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= limit:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))
    return deepest


def read_json(path: Path, error: type[Exception], max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file of at most `max_bytes`, nesting at most MAX_JSON_DEPTH levels;
    `error` names the file when it is too large, not UTF-8 text or not valid JSON."""
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{path}: {size} bytes is too large for this JSON file (at most "
                    f"{max_bytes}); is it the right file?")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError: a ValueError
        raise error(f"{path}: damaged or truncated JSON ({str(e).splitlines()[0][:200]})"
                    ) from e
    if json_depth(data) > MAX_JSON_DEPTH:
        raise error(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH} levels; is it the right "
                    f"file?")
    return data


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (artifact provenance: ONNX and engine hashes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class MetadataError(BadInputError):
    """An artifact's metadata is missing or inconsistent."""


@dataclass(frozen=True)
class ModelMeta:
    """What a model file holds, beyond its weights."""

    classes: tuple[str, ...]
    palette_rgb: tuple[tuple[int, int, int], ...]
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE  # (H, W) the model expects
    mean_rgb: tuple[float, float, float] = MEAN_RGB
    std_rgb: tuple[float, float, float] = STD_RGB
    exposure_target: float | None = None  # core.exposure: dark frames brightened to this
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
    def from_dict(cls, d: dict[str, Any], source: str | Path = "model metadata") -> ModelMeta:
        """Validated metadata; any missing or mistyped field is a MetadataError naming
        `source` (the file it came from) and the field."""
        if not isinstance(d, dict):
            raise MetadataError(f"{source}: metadata is not a JSON object")
        missing = {"classes", "palette_rgb"} - set(d)
        if missing:
            raise MetadataError(f"{source}: metadata lacks {sorted(missing)}; re-export the "
                                f"model with `lgcnet export`")
        known = {f.name for f in fields(cls)}
        kw = {k: _checked(k, v, source) for k, v in d.items() if k in known}
        meta = cls(**kw)
        if meta.input_format not in INPUT_FORMATS or meta.output_kind not in OUTPUT_KINDS:
            raise MetadataError(f"{source}: unknown input_format/output_kind "
                                f"{meta.input_format!r}/{meta.output_kind!r}")
        if len(meta.palette_rgb) < meta.num_classes:
            raise MetadataError(f"{source}: {meta.num_classes} classes but "
                                f"{len(meta.palette_rgb)} palette colours")
        return meta

    # ONNX metadata_props hold strings: one JSON value per key, prefixed to avoid clashes.
    def to_props(self) -> dict[str, str]:
        return {f"lgcnet.{k}": json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str | Path = "model metadata") -> ModelMeta:
        d = {}
        for key, value in props.items():
            if key.startswith("lgcnet."):
                try:
                    d[key.removeprefix("lgcnet.")] = json.loads(value)
                except json.JSONDecodeError as e:
                    raise MetadataError(f"{source}: metadata field {key} is not JSON ({e})") from e
        return cls.from_dict(d, source)

    @property
    def dataset_info(self) -> Dataset:
        return DATASETS.get(self.dataset) or Dataset(self.dataset, self.classes,
                                                     self.palette_rgb, 255)


# Field -> (what it must be, converter): JSON has lists where the dataclass has tuples.
def _number_tuple(n: int, kind: type) -> Any:
    def check(v: Any) -> tuple:
        if not (isinstance(v, list | tuple) and len(v) == n
                and all(isinstance(x, kind | int) and not isinstance(x, bool) for x in v)):
            raise TypeError(f"a list of {n} numbers")
        return tuple(kind(x) for x in v)
    return check


def _strings(v: Any) -> tuple[str, ...]:
    if not (isinstance(v, list | tuple) and v and all(isinstance(x, str) for x in v)):
        raise TypeError("a non-empty list of strings")
    return tuple(v)


def _palette(v: Any) -> tuple[tuple[int, int, int], ...]:
    rgb = _number_tuple(3, int)
    if not isinstance(v, list | tuple):
        raise TypeError("a list of [r, g, b] colours")
    return tuple(rgb(c) for c in v)


def _of_type(kind: type) -> Any:
    def check(v: Any) -> Any:
        if not isinstance(v, kind):
            raise TypeError(f"a {kind.__name__}")
        return v
    return check


def _exposure(v: Any) -> float | None:
    try:
        return None if v is None else check_target(v)
    except ExposureError:
        raise TypeError("null or a mean luminance between 0 and 1") from None


_FIELD_CHECKS = {
    "classes": _strings, "palette_rgb": _palette, "input_size": _number_tuple(2, int),
    "mean_rgb": _number_tuple(3, float), "std_rgb": _number_tuple(3, float),
    "exposure_target": _exposure,
    "genotype_hash": _of_type(str), "genotype": _of_type(dict), "input_format": _of_type(str),
    "output_kind": _of_type(str), "precision": _of_type(str), "dataset": _of_type(str),
    "extra": _of_type(dict)}


def _checked(name: str, value: Any, source: str | Path) -> Any:
    try:
        return _FIELD_CHECKS[name](value)
    except TypeError as e:
        raise MetadataError(f"{source}: metadata field {name!r} must be {e}, got "
                            f"{value!r:.60}") from None
