"""Export to ONNX: fold BN, wrap for deployment, export, simplify with onnxsim, check, tag."""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from lgcnet_deploy.core.errors import BadInputError, WorkFailedError
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, ModelMeta
from lgcnet_deploy.core.version import __version__
from lgcnet_deploy.export.integrity import stamp_weights_digest
from lgcnet_deploy.export.io_wrapper import wrap_io

MIN_OPSET = 17
# The network takes any H, W >= 1: stride-2 layers round up, Up x2 edges crop to the finer
# branch and the logits are resized to the input (tests/test_export.py exports 1x1 and 15x17).
MIN_INPUT_SIDE = 1
INPUT_NAME, OUTPUT_NAME = "input", "output"


class ExportError(WorkFailedError):
    """ONNX export, simplification or checking failed."""


def export_onnx(net: nn.Module, meta: ModelMeta, path: str | Path, *, batch: int = 1,
                dynamic_batch: bool = False, opset: int = MIN_OPSET, simplify: bool = True,
                fold: bool = True) -> Path:
    """Export `net` (an LGCNet) with the I/O described by `meta` to an ONNX file.

    meta.input_size fixes H and W (static shapes let TensorRT and onnxsim fold everything);
    `dynamic_batch` makes the batch axis symbolic. Writes to a temporary file first, so an
    existing file at `path` survives a failed export.
    """
    check_export_settings(meta.input_size, batch, opset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = wrap_io(net, meta, fold=fold)
    h, w = meta.input_size
    if meta.input_format == INPUT_UINT8_NHWC_BGR:
        dummy = torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8)
    else:
        dummy = torch.randn(batch, 3, h, w)
    tmp = path.with_name(path.name + ".partial")
    try:
        proto = onnx_from_module(model, dummy, tmp, opset=opset, dynamic_batch=dynamic_batch,
                                 simplify=simplify)
    except Exception as e:
        raise ExportError(f"ONNX export of {meta.genotype_hash or 'model'} failed: {e}") from e
    props = meta.replace(precision="fp32", extra={**meta.extra, "producer":
                         f"lgcnet-deploy {__version__}", "dynamic_batch": dynamic_batch,
                         "opset": opset}).to_props()
    onnx.helper.set_model_props(proto, props)
    stamp_weights_digest(proto)
    proto.doc_string = f"LGCNet genotype {meta.genotype_hash} ({meta.dataset})"
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


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


def onnx_from_module(module: nn.Module, dummy: torch.Tensor, path: str | Path, *,
                     opset: int = MIN_OPSET, dynamic_batch: bool = False,
                     simplify: bool = True) -> onnx.ModelProto:
    """Trace `module` on `dummy` to ONNX at `path`, simplify and check; return the proto.

    The one torch -> ONNX step, also used by the latency table to export single ops. It uses
    the TorchScript exporter (`dynamo=False`): in torch 2.13 the dynamo exporter cannot keep
    the batch axis symbolic for this network, which TensorRT optimisation profiles need.
    """
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(module.eval(), (dummy,), str(path), input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset,
                              dynamic_axes=axes, dynamo=False)
        proto = onnx.load(str(path))
        if simplify:
            proto = _simplify(proto)
        onnx.checker.check_model(proto, full_check=True)
    except Exception:
        Path(path).unlink(missing_ok=True)
        raise
    onnx.save(proto, str(path))
    return proto


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(proto)
    if not ok:
        raise ExportError("onnxsim could not validate the simplified model")
    return simplified
