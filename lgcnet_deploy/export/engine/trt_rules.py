"""TensorRT-compatibility gate: the rules an ONNX must keep for TensorRT's ONNX parser and
builder, checked on the ONNX alone (no TensorRT, no GPU), so CI can run it.

`check_onnx(model)` returns every Finding: errors break a rule TensorRT enforces (the build
would fail), warnings cost speed (fp32 islands on full-resolution tensors of an FP16 graph).
`lgcnet check-trt x.onnx` prints them; `lgcnet build` refuses a graph with an error.
Each rule names the source it was read from (repository and path) in RULES.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from lgcnet_deploy.export.engine.trt_operators import SUPPORTED_TYPES

ERROR, WARNING = "error", "warning"

# rule id -> (what it demands, where TensorRT says so)
RULES: dict[str, tuple[str, str]] = {
    # The parser asserts "TensorRT does not support UINT8 types for intermediate tensors!" on
    # any UINT8 node output that is not a graph output; a UINT8 input must feed a Cast directly
    # (Cast is the only op whose supported types list UINT8).
    "uint8": ("UINT8 only as a graph input that feeds Casts directly, or as a graph output",
              "onnx/onnx-tensorrt ModelImporter.cpp (parseNode) and docs/operators.md; "
              "NVIDIA/TensorRT issue #3985"),
    # The supported-operator matrix, with the data types of each op's main input.
    "operator": ("every op in onnx-tensorrt's supported-operator list, default ONNX domain, "
                 "with an input type the list gives for it",
                 "onnx/onnx-tensorrt docs/operators.md"),
    # IDequantizeLayer: input kINT8, kFP8, kINT4 (or kFP4); the parser's QuantDequantLinearHelper
    # only builds INT8/FP8/INT4 Q/DQ, so an INT32 bias or a UINT8 activation DQ is rejected.
    "dequantize-input": ("DequantizeLinear input INT8 (or FP8/INT4)",
                         "NVIDIA/TensorRT include/NvInfer.h (IDequantizeLayer); "
                         "onnx/onnx-tensorrt onnxOpImporters.cpp (QuantDequantLinearHelper)"),
    # "TensorRT only supports symmetric quantization. The zero point ... must be all zeros";
    # the zero point must be a build-time constant; scales strictly positive.
    "qdq-zero-point": ("Q/DQ zero points constant and all 0, scales constant and > 0",
                       "onnx/onnx-tensorrt onnxOpImporters.cpp (QuantDequantLinearHelper); "
                       "NVIDIA/TensorRT include/NvInfer.h (IQuantizeLayer, IDequantizeLayer)"),
    # Per-channel only for weights ("Activations cannot be quantized per-channel"), one scale
    # per channel of the axis, and the axis on output channels: Conv 0, ConvTranspose 1.
    "qdq-axis": ("per-channel Q/DQ only on weights, one scale per channel, along the output "
                 "channels (Conv axis 0, ConvTranspose axis 1)",
                 "NVIDIA/TensorRT include/NvInfer.h (IQuantizeLayer); onnx/onnx-tensorrt "
                 "onnxOpImporters.cpp; NVIDIA/TensorRT-Model-Optimizer "
                 "modelopt/onnx/quantization/ort_utils.py (QDQOpTypePerChannelSupportToAxis)"),
    # A network with dynamic input dimensions needs an optimization profile, or the builder
    # fails ("Network has dynamic or shape inputs, but no optimization profile has been
    # defined"); Polygraphy's CreateConfig/Profile.fill_defaults would silently pin them to 1.
    "dynamic-shape": ("dynamic input dimensions only with a build profile",
                      "NVIDIA/TensorRT tools/Polygraphy/polygraphy/backend/trt/profile.py "
                      "(fill_defaults), tools/Polygraphy/polygraphy/backend/trt/config.py"),
    # A speed rule, not a parser rule: strongly typed FP16 networks run every fp32 tensor in
    # fp32, so a full-resolution fp32 tensor costs a full-resolution fp32 pass.
    "fp16-island": ("FP16 graphs keep no fp32 tensors at full resolution (warning)",
                    "NVIDIA/TensorRT include/NvInfer.h (kSTRONGLY_TYPED: types follow the "
                    "ONNX)"),
}

_TYPE_NAMES = {TensorProto.FLOAT: "FP32", TensorProto.DOUBLE: "FP32",  # cast down on import
               TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
               TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.INT8: "INT8",
               TensorProto.UINT8: "UINT8", TensorProto.BOOL: "BOOL",
               TensorProto.FLOAT8E4M3FN: "FP8", TensorProto.INT4: "INT4"}
_DQ_INPUTS = ("INT8", "FP8", "INT4")
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_OUTPUT_CHANNEL_AXIS = {"Conv": 0, "ConvTranspose": 1}


@dataclass(frozen=True)
class Finding:
    """One broken rule at one node or tensor."""

    rule: str
    severity: str
    where: str  # node name (or tensor name for graph inputs)
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: [{self.rule}] {self.where}: {self.message}"


class _Graph:
    """The graph with dtypes/shapes from ONNX shape inference, producers and consumers."""

    def __init__(self, model: onnx.ModelProto) -> None:
        inferred = onnx.shape_inference.infer_shapes(model)
        self.g = inferred.graph
        self.consts = {i.name: i for i in self.g.initializer}
        for n in self.g.node:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.consts[n.output[0]] = n.attribute[0].t
        self.types = {v.name: v.type.tensor_type for v in
                      [*self.g.value_info, *self.g.input, *self.g.output]}
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in self.g.output}

    def dtype(self, name: str) -> int | None:
        if name in self.consts:
            return self.consts[name].data_type
        t = self.types.get(name)
        return t.elem_type if t is not None and t.elem_type else None

    def shape(self, name: str) -> tuple[int | str | None, ...] | None:
        t = self.types.get(name)
        if t is None or not t.HasField("shape"):
            return None
        return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                     for d in t.shape.dim)

    def const(self, name: str) -> np.ndarray | None:
        return numpy_helper.to_array(self.consts[name]) if name in self.consts else None


def _type_name(dtype: int | None) -> str:
    return _TYPE_NAMES.get(dtype, TensorProto.DataType.Name(dtype)) if dtype else "?"


def _node_name(n: onnx.NodeProto) -> str:
    return n.name or f"{n.op_type}({n.output[0]})"


def _uint8(g: _Graph) -> list[Finding]:
    found = []
    for inp in g.g.input:
        if g.dtype(inp.name) == TensorProto.UINT8:
            for user in g.consumers.get(inp.name, []):
                if user.op_type != "Cast":
                    found.append(Finding("uint8", ERROR, _node_name(user), (
                        f"UINT8 graph input {inp.name!r} feeds a {user.op_type}; TensorRT "
                        f"takes UINT8 only into a Cast (cast to float first, then "
                        f"{user.op_type})")))
    for n in g.g.node:
        if n.op_type in _QDQ:
            continue  # a UINT8 Q/DQ is imported as INT8; qdq rules judge it
        for out in n.output:
            if g.dtype(out) == TensorProto.UINT8 and out not in g.outputs:
                found.append(Finding("uint8", ERROR, _node_name(n), (
                    f"writes UINT8 tensor {out!r} that is not a graph output: TensorRT does "
                    f"not support UINT8 intermediate tensors")))
    return found


def _operators(g: _Graph) -> list[Finding]:
    found = []
    for n in g.g.node:
        if n.domain not in ("", "ai.onnx"):
            found.append(Finding("operator", ERROR, _node_name(n), (
                f"{n.domain}::{n.op_type} is not an ONNX standard op (a plugin would be "
                f"needed)")))
            continue
        if n.op_type not in SUPPORTED_TYPES:
            found.append(Finding("operator", ERROR, _node_name(n),
                                 f"{n.op_type} is not in onnx-tensorrt's supported operators"))
            continue
        dtype = _type_name(g.dtype(n.input[0])) if n.input and n.input[0] else "?"
        # UINT8 and DequantizeLinear inputs have their own rules (one finding per defect)
        own_rule = n.op_type == "DequantizeLinear" or dtype in ("?", "UINT8")
        if not own_rule and dtype not in SUPPORTED_TYPES[n.op_type]:
            found.append(Finding("operator", ERROR, _node_name(n), (
                f"{n.op_type} on {dtype}; onnx-tensorrt supports it on "
                f"{', '.join(SUPPORTED_TYPES[n.op_type])}")))
    return found


def _dequantize_inputs(g: _Graph) -> list[Finding]:
    found = []
    for n in g.g.node:
        if n.op_type == "DequantizeLinear":
            dtype = _type_name(g.dtype(n.input[0]))
            if dtype not in _DQ_INPUTS and dtype != "?":
                what = "bias" if dtype == "INT32" else "input"
                found.append(Finding("dequantize-input", ERROR, _node_name(n), (
                    f"dequantizes a {dtype} {what} {n.input[0]!r}; TensorRT's dequantize "
                    f"layer takes {'/'.join(_DQ_INPUTS)} only (keep biases float: "
                    f"QuantizeBias=False)")))
    return found


def _qdq_zero_points(g: _Graph) -> list[Finding]:
    found = []
    for n in g.g.node:
        if n.op_type not in _QDQ:
            continue
        scale = g.const(n.input[1])
        if scale is None or (scale <= 0).any():
            found.append(Finding("qdq-zero-point", ERROR, _node_name(n), (
                f"scale {n.input[1]!r} must be a constant with all values > 0")))
        if len(n.input) > 2 and n.input[2]:
            zero = g.const(n.input[2])
            if zero is None or zero.astype(np.int64).any():
                shown = "not a constant" if zero is None else f"{zero.ravel()[:4].tolist()}"
                found.append(Finding("qdq-zero-point", ERROR, _node_name(n), (
                    f"zero point {n.input[2]!r} is {shown} ({_type_name(g.dtype(n.input[2]))})"
                    f"; TensorRT quantizes symmetrically: zero points must be constant 0")))
    return found


def _qdq_axes(g: _Graph) -> list[Finding]:
    found = []
    for n in g.g.node:
        scale = g.const(n.input[1]) if n.op_type in _QDQ else None
        if scale is None or scale.size <= 1:
            continue
        data = n.input[0]
        src = data if n.op_type == "QuantizeLinear" else (
            g.producer[data].input[0] if data in g.producer and g.producer[data].op_type
            == "QuantizeLinear" else data)
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        if src not in g.consts:
            found.append(Finding("qdq-axis", ERROR, _node_name(n), (
                f"per-channel scales on activation {data!r}: TensorRT quantizes only weights "
                f"per channel")))
            continue
        dims = g.consts[src].dims
        axis = axis % len(dims) if dims else axis
        if not dims or dims[axis] != scale.size:
            found.append(Finding("qdq-axis", ERROR, _node_name(n), (
                f"{scale.size} scales for axis {axis} of a {list(dims)} weight")))
        users = [u for u in g.consumers.get(n.output[0], []) if u.op_type in
                 _OUTPUT_CHANNEL_AXIS and u.input[1] == n.output[0]]  # the weight input
        for user in users:
            if _OUTPUT_CHANNEL_AXIS[user.op_type] != axis:
                found.append(Finding("qdq-axis", ERROR, _node_name(n), (
                    f"quantizes {user.op_type} {_node_name(user)!r} weights along axis "
                    f"{axis}; TensorRT wants the output-channel axis "
                    f"{_OUTPUT_CHANNEL_AXIS[user.op_type]}")))
    return found


def _dynamic_shapes(g: _Graph, profiled: Collection[str]) -> list[Finding]:
    found = []
    for inp in g.g.input:
        if inp.name in g.consts or inp.name in profiled:
            continue
        dynamic = [str(d) if d else "?" for d in g.shape(inp.name) or ()
                   if not isinstance(d, int) or d <= 0]
        if dynamic or g.shape(inp.name) is None:
            found.append(Finding("dynamic-shape", ERROR, inp.name, (
                f"input has dynamic dimensions {dynamic or 'of unknown rank'}: build it with "
                f"a profile (lgcnet build --batch N, or --min/--opt/--max BxHxW)")))
    return found


def _full_resolution(g: _Graph) -> tuple[int, int] | None:
    """(H, W) of the image input: NHWC when its last dim is 3, else NCHW."""
    shape = g.shape(g.g.input[0].name) if g.g.input else None
    if not shape or len(shape) != 4:
        return None
    hw = shape[1:3] if shape[3] == 3 else shape[2:4]
    return hw if all(isinstance(d, int) and d > 0 for d in hw) else None


def _fp16_islands(g: _Graph) -> list[Finding]:
    convs = [n for n in g.g.node if n.op_type in _OUTPUT_CHANNEL_AXIS]
    hw = _full_resolution(g)
    if hw is None or not any(g.dtype(n.input[0]) == TensorProto.FLOAT16 for n in convs):
        return []
    found = []
    for n in g.g.node:
        for out in n.output:
            shape = g.shape(out) or ()
            full = len(shape) == 4 and hw in (tuple(shape[2:4]), tuple(shape[1:3]))
            if full and g.dtype(out) == TensorProto.FLOAT and out not in g.outputs:
                found.append(Finding("fp16-island", WARNING, _node_name(n), (
                    f"{n.op_type} writes fp32 tensor {out!r} {list(shape)} at full resolution "
                    f"in an FP16 graph (an fp32 pass over {hw[0]}x{hw[1]})")))
    return found


def check_onnx(model: onnx.ModelProto | str | Path,
               profiled_inputs: Collection[str] = ()) -> list[Finding]:
    """Every TensorRT rule `model` breaks (errors first). `profiled_inputs`: inputs the build
    gives an optimisation profile (their dynamic dimensions are then fine)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    g = _Graph(model)
    found = [*_uint8(g), *_operators(g), *_dequantize_inputs(g), *_qdq_zero_points(g),
             *_qdq_axes(g), *_dynamic_shapes(g, profiled_inputs), *_fp16_islands(g)]
    return sorted(found, key=lambda f: f.severity != ERROR)


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR]


def report(findings: list[Finding], name: str, limit: int | None = None) -> str:
    """Findings as text (at most `limit` per rule), each rule's source, and a count."""
    lines, shown = [], dict.fromkeys((f.rule for f in findings), 0)
    for f in findings:
        shown[f.rule] += 1
        if limit is None or shown[f.rule] <= limit:
            lines.append(str(f))
    for rule, n in shown.items():
        more = f" ({n - limit} more like it)" if limit is not None and n > limit else ""
        lines.append(f"  [{rule}]{more} {RULES[rule][0]} -- source: {RULES[rule][1]}")
    n_err = len(errors(findings))
    lines.append(f"{name}: {n_err} error(s), {len(findings) - n_err} warning(s)"
                 + ("" if findings else ": TensorRT-compatible"))
    return "\n".join(lines)
