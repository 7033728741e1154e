"""FP16 ONNX: the same graph with float16 weights and activations, I/O unchanged.

TensorRT 11 has no BuilderFlag.FP16 (networks are always strongly typed), so precision must
live in the ONNX; we build the same FP16 ONNX strongly typed on TensorRT 10 too, so both
versions run the same numerics, and ONNX Runtime can check it on a CPU.

Converter: onnxconverter-common's `convert_float_to_float16(keep_io_types=True)`. Chosen over
NVIDIA ModelOpt AutoCast because it is a small pure-Python package (onnx, numpy, protobuf)
that installs on any CPU machine and on Jetson, and for this conv/ReLU network the plain
full conversion already keeps the argmax within the 99.5 % agreement we test for. AutoCast
(`python -m modelopt.onnx.autocast`) picks per-node precision from reference runs and is the
better tool for numerically fragile graphs; an ONNX it produces builds here unchanged.
Docs: https://github.com/microsoft/onnxconverter-common (float16.py);
https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-patterns.html
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx

from lgcnet_deploy.core.metadata import ModelMeta

INSTALL = "pip install onnxconverter-common"


def _float16_module():
    try:
        from onnxconverter_common import float16
    except ImportError as e:
        raise ImportError(f"FP16 ONNX conversion needs onnxconverter-common: {INSTALL}") from e
    return float16


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert an fp32 lgcnet ONNX to fp16 compute; uint8/float32 inputs and int32/float32
    outputs keep their dtypes, and metadata_props say precision 'fp16'."""
    float16 = _float16_module()
    props = {p.key: p.value for p in model.metadata_props}
    meta = ModelMeta.from_props(props)
    if meta.precision != "fp32":
        raise ValueError(f"model precision is {meta.precision!r}; FP16 conversion needs the "
                         f"fp32 ONNX from `lgcnet export`")
    # The converter retypes a Cast-to-float's output as fp16 without changing the Cast's `to`
    # (an invalid graph); keeping those Casts fp32 makes it insert a Cast to fp16 after them.
    # Its default op block list stays: e.g. Resize's `scales` input must remain float32.
    casts_to_float = [n.name for n in model.graph.node if n.op_type == "Cast" and any(
        a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in n.attribute)]
    with warnings.catch_warnings():
        # It warns for every weight below fp16's smallest normal; those become +-1e-7.
        warnings.filterwarnings("ignore", message=".*will be truncated to.*")
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=casts_to_float,
            op_block_list=float16.DEFAULT_OP_BLOCK_LIST)
    props.update(meta.replace(precision="fp16").to_props())
    del converted.metadata_props[:]
    onnx.helper.set_model_props(converted, props)
    onnx.checker.check_model(converted)
    return converted


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write the FP16 version of the ONNX at `src` to `dst` (atomically)."""
    dst = Path(dst)
    converted = to_fp16(onnx.load(str(src)))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    onnx.save(converted, str(tmp))
    tmp.replace(dst)
    return dst
