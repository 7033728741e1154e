"""The ONNX steps of the export chain: trace a wrapped network to ONNX, simplify it with
onnxsim, and save it checked and tagged (metadata, weights digest)."""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from lgcnet_deploy.artifact.integrity import stamp_weights_digest
from lgcnet_deploy.core.errors import BadInputError, WorkFailedError
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, ModelMeta
from lgcnet_deploy.core.version import __version__

MIN_OPSET = 17
# The network takes any H, W >= 1: stride-2 layers round up, Up x2 edges crop to the finer
# branch and the logits are resized to the input (tests/test_export.py exports 1x1 and 15x17).
MIN_INPUT_SIDE = 1
INPUT_NAME, OUTPUT_NAME = "input", "output"


class ExportError(WorkFailedError):
    """ONNX export, simplification or checking failed."""


def check_export_settings(input_size: tuple[int, int], batch: int, opset: int) -> None:
    """Refuse settings no exported model could run with (ValueError saying what fits)."""
    if opset < MIN_OPSET:
        raise BadInputError(f"opset {opset} < {MIN_OPSET}: LGCNet's exporter needs opset >= 17")
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
        raise BadInputError(f"batch must be an integer >= 1, got {batch!r} (use --dynamic-batch "
                            f"for a model that takes any batch)")
    size = tuple(input_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral)
                             or s < MIN_INPUT_SIDE for s in size):
        raise BadInputError(f"input size must be two integers H, W >= {MIN_INPUT_SIDE}, got "
                            f"{input_size!r}")


def dummy_input(meta: ModelMeta, batch: int) -> torch.Tensor:
    """A batch in the I/O `meta` names, to trace with."""
    h, w = meta.input_size
    if meta.input_format == INPUT_UINT8_NHWC_BGR:
        return torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8)
    return torch.randn(batch, 3, h, w)


def trace(module: nn.Module, dummy: torch.Tensor, path: str | Path, *, opset: int = MIN_OPSET,
          dynamic_batch: bool = False) -> onnx.ModelProto:
    """Trace `module` on `dummy` to ONNX; `path` holds the traced file only while this runs.

    It uses the TorchScript exporter (`dynamo=False`): in torch 2.13 the dynamo exporter
    cannot keep the batch axis symbolic for this network, which TensorRT optimisation
    profiles need.
    """
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(module.eval(), (dummy,), str(path), input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset,
                              dynamic_axes=axes, dynamo=False)
        return onnx.load(str(path))
    finally:
        Path(path).unlink(missing_ok=True)


def simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim's simplified graph (constants folded, shapes inferred)."""
    import onnxsim

    simplified, ok = onnxsim.simplify(proto)
    if not ok:
        raise ExportError("onnxsim could not validate the simplified model")
    return simplified


def save(proto: onnx.ModelProto, path: str | Path, meta: ModelMeta | None = None,
         extra: dict | None = None) -> Path:
    """Check `proto` and write it to `path` through a temporary file (an existing file
    survives a failure); with `meta`, tag it first: metadata_props (fp32, `extra` added),
    the weights digest and a doc string."""
    path = Path(path)
    onnx.checker.check_model(proto, full_check=True)
    if meta is not None:
        props = meta.replace(precision="fp32", extra={
            **meta.extra, "producer": f"lgcnet-deploy {__version__}", **(extra or {})})
        onnx.helper.set_model_props(proto, props.to_props())
        stamp_weights_digest(proto)
        proto.doc_string = f"LGCNet genotype {meta.genotype_hash} ({meta.dataset})"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def onnx_from_module(module: nn.Module, dummy: torch.Tensor, path: str | Path, *,
                     opset: int = MIN_OPSET, dynamic_batch: bool = False,
                     do_simplify: bool = True) -> onnx.ModelProto:
    """trace -> simplify -> save, untagged: one module (e.g. a single op for the latency
    table) as an ONNX file at `path`; returns the proto."""
    proto = trace(module, dummy, Path(path).with_name(Path(path).name + ".trace"), opset=opset,
                  dynamic_batch=dynamic_batch)
    proto = simplify(proto) if do_simplify else proto
    save(proto, path)
    return proto
