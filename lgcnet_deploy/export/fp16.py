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
from lgcnet_deploy.export.integrity import stamp_weights_digest

INSTALL = "pip install onnxconverter-common"


def _float16_module():
    try:
        from onnxconverter_common import float16
    except ImportError as e:
        raise ImportError(f"FP16 ONNX conversion needs onnxconverter-common: {INSTALL}") from e
    return float16


# DequantizeLinear/QuantizeLinear take float16 scales from opset 19 on (opset 13: float only)
QDQ_FP16_OPSET = 19


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert an fp32 lgcnet ONNX to fp16 compute; uint8/float32 inputs and int32/float32
    outputs keep their dtypes, and metadata_props say precision 'fp16'. An int8 Q/DQ ONNX
    gets an fp16 body and fp16 scales (opset >= 19) and stays 'int8': what strongly typed
    TensorRT needs to run the layers outside Q/DQ pairs in fp16 (each DequantizeLinear
    outputs its scale's type)."""
    props = {p.key: p.value for p in model.metadata_props}
    meta = ModelMeta.from_props(props)
    if meta.precision == "int8":
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        if opset < QDQ_FP16_OPSET:
            from onnx import version_converter

            model = version_converter.convert_version(model, QDQ_FP16_OPSET)
        precision = "int8"
    elif meta.precision == "fp32":
        precision = "fp16"
    else:
        raise ValueError(f"model precision is {meta.precision!r}; FP16 conversion needs the "
                         f"fp32 ONNX from `lgcnet export` (or its int8 Q/DQ copy)")
    converted = _convert(model)
    props.update(meta.replace(precision=precision).to_props())
    del converted.metadata_props[:]
    onnx.helper.set_model_props(converted, props)
    onnx.checker.check_model(converted)
    return converted


def _convert(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxconverter-common's conversion with our block list, Cast pairs folded."""
    float16 = _float16_module()
    # The converter retypes a Cast-to-float's output as fp16 without changing the Cast's `to`
    # (an invalid graph); keeping those Casts fp32 makes it insert a Cast to fp16 after them,
    # which _fuse_cast_pairs folds back into one Cast. Its default op block list keeps every
    # Resize fp32 for the sake of a float32 `scales` input; a Resize sized by `sizes` (what
    # the export writes) has none, and leaving it fp32 would put the full-resolution logits
    # in an fp32 island between two Casts.
    blocked = [n.name for n in model.graph.node if _is_cast_to(n, onnx.TensorProto.FLOAT)
               or (n.op_type == "Resize" and len(n.input) > 2 and n.input[2])]
    ops = [op for op in float16.DEFAULT_OP_BLOCK_LIST if op != "Resize"]
    with warnings.catch_warnings():
        # It warns for every weight below fp16's smallest normal; those become +-1e-7.
        warnings.filterwarnings("ignore", message=".*will be truncated to.*")
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=blocked, op_block_list=ops)
    _fuse_cast_pairs(converted.graph)
    return converted


def _is_cast_to(node: onnx.NodeProto, dtype: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == dtype
                                          for a in node.attribute)


def _fuse_cast_pairs(graph: onnx.GraphProto) -> None:
    """Cast(x -> fp32) feeding only a Cast(-> fp16) becomes one Cast(x -> fp16): no
    full-resolution fp32 copy of the uint8 frame (TensorRT casts uint8 to fp16 directly)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    for first in [n for n in graph.node if _is_cast_to(n, onnx.TensorProto.FLOAT)]:
        users = consumers.get(first.output[0], [])
        if (len(users) != 1 or first.output[0] in outputs
                or not _is_cast_to(users[0], onnx.TensorProto.FLOAT16)):
            continue
        second = users[0]
        del first.attribute[:]
        first.attribute.append(onnx.helper.make_attribute("to", onnx.TensorProto.FLOAT16))
        first.output[0] = second.output[0]
        graph.node.remove(second)
    kept = {o for n in graph.node for o in n.output}
    live = [v for v in graph.value_info if v.name in kept]
    del graph.value_info[:]
    graph.value_info.extend(live)


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write the FP16 version of the ONNX at `src` to `dst` (atomically)."""
    dst = Path(dst)
    converted = stamp_weights_digest(to_fp16(onnx.load(str(src))))  # the weights changed
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    onnx.save(converted, str(tmp))
    tmp.replace(dst)
    return dst
