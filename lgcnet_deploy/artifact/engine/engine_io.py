"""What an engine's I/O tensors say about the model, for engines with or without a sidecar.

The runtime lists the engine's I/O tensors as (name, is_input, shape, dtype name) tuples
(TensorRT's DataType names: UINT8, FLOAT, HALF, INT32, INT64) and hands them here: pure
Python, so the derivation is tested without TensorRT. An engine built elsewhere (trtexec or
Polygraphy on a Jetson, only the .engine copied) gets its input format, size, output kind and,
for logits, class count from these; its class names and palette are then defaults.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lgcnet_deploy.artifact.engine.sidecar import EngineMismatchError
from lgcnet_deploy.core.classes import DATASETS
from lgcnet_deploy.core.metadata import (
    INPUT_FLOAT_NCHW_RGB,
    INPUT_UINT8_NHWC_BGR,
    OUTPUT_ARGMAX,
    OUTPUT_LOGITS,
    ModelMeta,
)

TensorSpec = tuple[str, bool, Sequence[int], str]  # (name, is_input, shape, dtype name)
FLOATS, INTEGERS = ("FLOAT", "HALF"), ("INT32", "INT64")
CLASS_MAP_CLASSES = 256  # a class map names no class count; its ids fit a uint8 palette


@dataclass(frozen=True)
class EngineIO:
    """The one input and one output of an engine, and what they imply."""

    input_name: str
    output_name: str
    input_shape: tuple[int, ...]  # -1 for a dynamic batch
    input_format: str
    output_kind: str
    input_size: tuple[int, int]  # (H, W)
    num_classes: int | None  # None for a class-map output

    @property
    def dynamic_batch(self) -> bool:
        return self.input_shape[0] == -1


def derive_io(tensors: Sequence[TensorSpec], engine: str = "engine") -> EngineIO:
    """EngineIO from the engine's tensors; EngineMismatchError naming what does not fit."""
    ins = [t for t in tensors if t[1]]
    outs = [t for t in tensors if not t[1]]
    if len(ins) != 1 or len(outs) != 1:
        raise EngineMismatchError(f"{engine} has {len(ins)} input(s) and {len(outs)} "
                                  f"output(s); an LGCNet engine has one image input and one "
                                  f"output")
    (in_name, _, in_shape, in_dtype), (out_name, _, out_shape, out_dtype) = ins[0], outs[0]
    in_shape, out_shape = tuple(int(d) for d in in_shape), tuple(int(d) for d in out_shape)
    if len(in_shape) == 4 and in_dtype == "UINT8" and in_shape[3] == 3:
        input_format, hw = INPUT_UINT8_NHWC_BGR, in_shape[1:3]
    elif len(in_shape) == 4 and in_dtype in FLOATS and in_shape[1] == 3:
        input_format, hw = INPUT_FLOAT_NCHW_RGB, in_shape[2:4]
    else:
        raise EngineMismatchError(f"{engine}: input {in_name!r} is {in_dtype} {list(in_shape)}; "
                                  f"expected UINT8 (N, H, W, 3) or FLOAT/HALF (N, 3, H, W)")
    if min(hw) <= 0 or any(d == 0 or d < -1 for d in in_shape):
        raise EngineMismatchError(f"{engine}: input {in_name!r} {list(in_shape)} has a dynamic "
                                  f"height/width; only the batch may be dynamic")
    if len(out_shape) == 3 and out_dtype in INTEGERS and tuple(out_shape[1:]) == hw:
        output_kind, classes = OUTPUT_ARGMAX, None
    elif len(out_shape) == 4 and out_dtype in FLOATS and tuple(out_shape[2:]) == hw:
        output_kind, classes = OUTPUT_LOGITS, out_shape[1]
    else:
        raise EngineMismatchError(
            f"{engine}: output {out_name!r} is {out_dtype} {list(out_shape)}; expected an "
            f"INT32 class map (N, {hw[0]}, {hw[1]}) or FLOAT/HALF logits (N, C, {hw[0]}, "
            f"{hw[1]})")
    return EngineIO(in_name, out_name, in_shape, input_format, output_kind, tuple(hw), classes)


def check_io_matches(io: EngineIO, meta: ModelMeta, engine: str = "engine") -> None:
    """The engine's I/O is what its sidecar metadata promises."""
    got = (io.input_format, io.output_kind, io.input_size)
    want = (meta.input_format, meta.output_kind, tuple(meta.input_size))
    if got != want or io.num_classes not in (None, meta.num_classes):
        raise EngineMismatchError(
            f"{engine}: engine I/O ({io.input_format} {io.input_size} in, {io.output_kind} "
            f"out, {io.num_classes or '?'} classes) does not match its metadata "
            f"({meta.input_format} {tuple(meta.input_size)} in, {meta.output_kind} out, "
            f"{meta.num_classes} classes); rebuild it")


def default_meta(io: EngineIO, engine: str = "engine") -> ModelMeta:
    """Metadata for an engine without a sidecar: its I/O, the classes of the dataset with its
    class count (else numbered classes) and that dataset's palette (else a fixed one); warns
    once, in one line."""
    n = io.num_classes or CLASS_MAP_CLASSES
    known = next((d for d in DATASETS.values() if d.num_classes == n), None)
    if known is not None:
        classes, palette, dataset = known.classes, known.palette_rgb, known.name
    else:
        colours = np.random.default_rng(0).integers(0, 256, (n, 3))
        classes = tuple(f"class_{i}" for i in range(n))
        palette, dataset = tuple(tuple(int(v) for v in c) for c in colours), "unknown"
    warnings.warn(f"{engine} has no sidecar: I/O read from the engine ({io.input_format} "
                  f"{io.input_size[0]}x{io.input_size[1]} in, {io.output_kind} out); class "
                  f"names and palette are defaults ({dataset}, {n} classes)", stacklevel=2)
    return ModelMeta(classes=classes, palette_rgb=palette, input_size=io.input_size,
                     input_format=io.input_format, output_kind=io.output_kind,
                     dataset=dataset, extra={"sidecar": None})
