"""TensorRT-compatibility gate: the rules an ONNX must keep for TensorRT's ONNX parser and
builder, checked on the ONNX alone (no TensorRT, no GPU), so CI can run it.

`check_onnx(model)` returns every Finding. Errors are what TensorRT's parser or builder
provably refuses (the build would fail, or NVIDIA's headers say it is unsupported); warnings
are what the parser accepts but this check cannot prove right (a data type the operator list
does not name, an op newer than the list, a scale computed in the graph, per-channel weight
axes TensorRT releases disagree on) and what costs speed (fp32 islands on full-resolution
tensors of an FP16 graph). `lgcnet check-trt x.onnx` prints them; `lgcnet build` refuses a
graph with an error. Each rule names the source it was read from (repository and path) in
RULES.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from lgcnet_deploy.export.engine.trt_operators import (
    SUPPORTED_TYPES,
    TABLE_VERSION,
    UNSUPPORTED,
)

ERROR, WARNING = "error", "warning"

# rule id -> (what it demands, where TensorRT says so)
RULES: dict[str, tuple[str, str]] = {
    # The parser asserts "TensorRT does not support UINT8 types for intermediate tensors!" on
    # any UINT8 node output that is not a graph output. NvInferRuntimeBase.h (DataType::kUINT8,
    # 10.13 lines 164 and 170) says "kUINT8 conversions are only supported for {kFLOAT,
    # kHALF}" and "kUINT8 conversions are not supported for {kINT8, kINT32, kBOOL}": the last
    # three are errors; INT64 and BF16, newer than that text, are warnings.
    "uint8": ("UINT8 only as a graph input feeding Casts to FP32/FP16, or as a graph output "
              "written by a Cast from FP32/FP16 (INT8/INT32/BOOL: error; INT64/BF16: warning)",
              "onnx/onnx-tensorrt ModelImporter.cpp (parseNode) and docs/operators.md; "
              "NVIDIA/TensorRT include/NvInferRuntimeBase.h (DataType::kUINT8); issue #3985"),
    # The supported-operator matrix. Its types are about an op's data, not its shape or index
    # inputs (ConstantOfShape's INT64 shape, Gather's indices, Resize's sizes).
    "operator": ("ops of the default ONNX domain that onnx-tensorrt does not list as "
                 "unsupported; ops missing from its list and data types it does not name for "
                 "an op are warnings (the parser decides)",
                 f"onnx/onnx-tensorrt docs/operators.md ({TABLE_VERSION})"),
    # IDequantizeLayer: input kINT8, kFP8, kINT4 or kFP4, so an INT32 bias DQ is rejected.
    # A UINT8 Q/DQ is not refused: QuantDequantLinearHelper warns ("TensorRT doesn't support
    # QuantizeLinear/DequantizeLinear with UINT8 zero_point. TensorRT will use INT8 instead")
    # and quantizes to INT8, so a range calibrated for uint8 is misread: refused here.
    "qdq-type": ("DequantizeLinear input INT8 (or FP8/INT4/FP4); QuantizeLinear not to UINT8 "
                 "(TensorRT would quantize it as INT8)",
                 "NVIDIA/TensorRT include/NvInfer.h (IQuantizeLayer, IDequantizeLayer); "
                 "onnx/onnx-tensorrt onnxOpImporters.cpp (QuantDequantLinearHelper)"),
    # "zeroPt must only contain zero-valued coefficients ... must be a build-time constant";
    # the parser finds it through Identity/Cast (getWeightsFromIdentityOrConstant) and accepts
    # tensor scales, whose positivity ("strictly positive values") it cannot check either.
    "qdq-zero-point": ("Q/DQ zero points build-time constants of zeros, scales > 0 (computed in "
                       "the graph: warning)",
                       "NVIDIA/TensorRT include/NvInfer.h (IQuantizeLayer, IDequantizeLayer); "
                       "onnx/onnx-tensorrt onnxOpImporters.cpp (QuantDequantLinearHelper, "
                       "getWeightsFromIdentityOrConstant)"),
    # "Activations cannot be quantized per-channel"; one scale per channel of the axis. Conv
    # weights per output channel (axis 0); NVIDIA: deconvolution kernels assume per-input-
    # channel scales, "We don't support per-output-channel quant for ConvTranspose".
    "qdq-axis": ("per-channel Q/DQ only on weights, one scale per channel of the axis; Conv "
                 "weights on axis 0, ConvTranspose weights per tensor (else a warning)",
                 "NVIDIA/TensorRT include/NvInfer.h (IQuantizeLayer); onnx/onnx-tensorrt "
                 "onnxOpImporters.cpp; NVIDIA/TensorRT issues #2380, #1694"),
    # Strongly typed networks (10.12+, 11): "if the scale data type is kHALF or kBF16, it
    # must match the input data type" (IQuantizeLayer), and a DequantizeLayer outputs the type
    # set with setToType, which the parser takes from the scale: with fp32 scales every layer
    # outside a Q/DQ pair runs in fp32/TF32, slower than an FP16 engine.
    "qdq-body": ("QuantizeLinear half scales only on data of their type; for `lgcnet build`, "
                 "whose INT8 ONNX has an fp16 body, no DequantizeLinear to fp32",
                 "NVIDIA/TensorRT include/NvInfer.h (IQuantizeLayer: scale type; "
                 "IDequantizeLayer: setToType)"),
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
               TensorProto.FLOAT8E4M3FN: "FP8", TensorProto.INT4: "INT4",
               getattr(TensorProto, "FLOAT4E2M1", -1): "FP4"}  # onnx >= 1.18
_QUANTIZED = ("INT8", "FP8", "INT4", "FP4")
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_CASTS = ("Cast", "CastLike")
_WEIGHTED = ("Conv", "ConvTranspose")
_UINT8_PEERS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)  # DOUBLE -> FP32
# what NvInferRuntimeBase.h names as never converted to or from kUINT8; other non-peers
# (INT64, BF16) are not named either way: a warning
_UINT8_REFUSED = (TensorProto.INT8, TensorProto.INT32, TensorProto.BOOL)
_PASS_THROUGH = ("Identity", "Cast")  # the parser looks through these for constant weights
# the formal types of an op's data, as opposed to its shapes, indices and conditions
_FLOAT_TYPES = {"tensor(float)", "tensor(float16)", "tensor(bfloat16)", "tensor(double)"}


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
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          onnx.defs.onnx_opset_version())
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
        self.inputs = {i.name for i in self.g.input} - set(self.consts)
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

    def constant_source(self, name: str) -> str | None:
        """The initializer or Constant output `name` comes from through Identity/Cast, if any."""
        while name not in self.consts and name in self.producer and \
                self.producer[name].op_type in _PASS_THROUGH:
            name = self.producer[name].input[0]
        return name if name in self.consts else None

    def const(self, name: str) -> np.ndarray | None:
        source = self.constant_source(name)
        return None if source is None else numpy_helper.to_array(self.consts[source])


def _type_name(dtype: int | None) -> str:
    return _TYPE_NAMES.get(dtype, TensorProto.DataType.Name(dtype)) if dtype else "?"


def _node_name(n: onnx.NodeProto) -> str:
    return n.name or f"{n.op_type}({n.output[0]})"


def _cast_target(g: _Graph, n: onnx.NodeProto) -> int | None:
    if n.op_type == "CastLike":
        return g.dtype(n.input[1])
    return next((a.i for a in n.attribute if a.name == "to"), None)


def _uint8_severity(peer: int | None) -> str:
    """A cast between UINT8 and `peer` (not FP32/FP16): an error where the header forbids it."""
    return ERROR if peer in _UINT8_REFUSED or peer is None else WARNING


def _uint8_inputs(g: _Graph) -> list[Finding]:
    found = []
    for name in sorted(g.inputs):
        if g.dtype(name) != TensorProto.UINT8:
            continue
        for user in g.consumers.get(name, []):
            if user.op_type not in _CASTS:
                found.append(Finding("uint8", ERROR, _node_name(user), (
                    f"UINT8 graph input {name!r} feeds a {user.op_type}; TensorRT takes UINT8 "
                    f"only into a Cast (cast to float first, then {user.op_type})")))
            elif _cast_target(g, user) not in _UINT8_PEERS:
                target = _cast_target(g, user)
                found.append(Finding("uint8", _uint8_severity(target), _node_name(user), (
                    f"casts UINT8 graph input {name!r} to {_type_name(target)}; "
                    f"TensorRT documents UINT8 conversions to FP32/FP16 only (cast to float "
                    f"first)")))
    return found


def _uint8_outputs(g: _Graph) -> list[Finding]:
    found = []
    for n in g.g.node:
        if n.op_type in _QDQ:
            continue  # a UINT8 Q/DQ is imported as INT8; the qdq rules judge it
        for out in n.output:
            if g.dtype(out) != TensorProto.UINT8:
                continue
            source = g.dtype(n.input[0]) if n.input and n.input[0] else None
            if out not in g.outputs:
                found.append(Finding("uint8", ERROR, _node_name(n), (
                    f"writes UINT8 tensor {out!r} that is not a graph output: TensorRT does "
                    f"not support UINT8 intermediate tensors")))
            elif n.op_type not in _CASTS or (source is not None and source not in _UINT8_PEERS):
                what = n.op_type if n.op_type not in _CASTS else f"a Cast from {_type_name(source)}"
                severity = ERROR if n.op_type not in _CASTS else _uint8_severity(source)
                found.append(Finding("uint8", severity, _node_name(n), (
                    f"writes UINT8 graph output {out!r} from {what}; TensorRT makes UINT8 only "
                    f"by a Cast from FP32/FP16 (cast to float first)")))
    return found


def _data_tensors(n: onnx.NodeProto, opset: int) -> list[str]:
    """The tensors an op's supported-type list is about: inputs whose formal type admits a
    float (its data, not shapes, indices or conditions), or, for an op without such inputs
    (ConstantOfShape, Constant, If), its outputs that do."""
    try:
        schema = onnx.defs.get_schema(n.op_type, opset, "")
    except onnx.defs.SchemaError:
        return [n.input[0]] if n.input and n.input[0] else []
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}

    def data(names: list[str], formals: list) -> list[str]:
        return [name for i, name in enumerate(names) if name and formals and _FLOAT_TYPES & (
            allowed.get(formals[min(i, len(formals) - 1)].type_str)
            or {formals[min(i, len(formals) - 1)].type_str})]

    return data(list(n.input), schema.inputs) or data(list(n.output), schema.outputs)


def _qdq_parameters(g: _Graph) -> set[str]:
    """(First outputs of) the nodes that only compute Q/DQ scales or zero points: INT8
    constants and the like, "Quantized Types" the operator list leaves out, which the qdq
    rules judge. Reverse topological order: every user is decided before its producer."""
    params: set[str] = set()
    for n in reversed(g.g.node):
        users = [(u, out) for out in n.output for u in g.consumers.get(out, [])]
        if users and all(u.output[0] in params or (u.op_type in _QDQ and u.input[0] != out)
                         for u, out in users):
            params.add(n.output[0])
    return params


def _operators(g: _Graph) -> list[Finding]:
    found, params = [], _qdq_parameters(g)
    for n in g.g.node:
        where = _node_name(n)
        if n.domain not in ("", "ai.onnx"):
            found.append(Finding("operator", ERROR, where, (
                f"{n.domain}::{n.op_type} is not an ONNX standard op (a plugin would be "
                f"needed)")))
        elif n.op_type in UNSUPPORTED:
            found.append(Finding("operator", ERROR, where,
                                 f"onnx-tensorrt lists {n.op_type} as unsupported"))
        elif n.op_type not in SUPPORTED_TYPES:
            found.append(Finding("operator", WARNING, where, (
                f"{n.op_type} is not in {TABLE_VERSION}'s list: newer than it, or unsupported; "
                f"the parser decides")))
        elif n.op_type != "DequantizeLinear" and n.output[0] not in params:  # qdq rules
            types = {_type_name(g.dtype(t)) for t in _data_tensors(n, g.opset)}
            odd = sorted(types - {"?", "UINT8"} - set(SUPPORTED_TYPES[n.op_type]))
            if odd:  # UINT8 has its own rule
                found.append(Finding("operator", WARNING, where, (
                    f"{n.op_type} on {', '.join(odd)}; onnx-tensorrt documents it on "
                    f"{', '.join(SUPPORTED_TYPES[n.op_type])}")))
    return found


def _qdq_types(g: _Graph) -> list[Finding]:
    found = []
    for n in g.g.node:
        if n.op_type == "DequantizeLinear":
            dtype = _type_name(g.dtype(n.input[0]))
            if dtype not in _QUANTIZED and dtype != "?":
                what = "bias" if dtype == "INT32" else "input"
                found.append(Finding("qdq-type", ERROR, _node_name(n), (
                    f"dequantizes a {dtype} {what} {n.input[0]!r}; TensorRT's dequantize "
                    f"layer takes {'/'.join(_QUANTIZED)} only (keep biases float: "
                    f"QuantizeBias=False)")))
        elif n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] and \
                g.dtype(n.input[2]) == TensorProto.UINT8:
            found.append(Finding("qdq-type", ERROR, _node_name(n), (
                f"quantizes to UINT8 (zero point {n.input[2]!r}); TensorRT's parser quantizes "
                f"it as INT8 instead (with a warning), misreading the uint8 range: quantize "
                f"to INT8, symmetric")))
    return found


def _qdq_body(g: _Graph, fp16_body: bool) -> list[Finding]:
    found = []
    for n in g.g.node:
        if n.op_type == "QuantizeLinear":
            scale, data = g.dtype(n.input[1]), g.dtype(n.input[0])
            if scale in (TensorProto.FLOAT16, TensorProto.BFLOAT16) and data and data != scale:
                found.append(Finding("qdq-body", ERROR, _node_name(n), (
                    f"{_type_name(scale)} scale on {_type_name(data)} data; strongly typed "
                    f"TensorRT needs a half scale to match the data's type")))
    fp32 = [n for n in g.g.node if n.op_type == "DequantizeLinear"
            and g.dtype(n.input[1]) == TensorProto.FLOAT] if fp16_body else []
    if fp32:
        found.append(Finding("qdq-body", ERROR, _node_name(fp32[0]), (
            f"{len(fp32)} DequantizeLinear node(s) output fp32: on TensorRT 10.12+ and 11 "
            f"every layer outside a Q/DQ pair would run in fp32 (export/fp16.py gives the "
            f"body and scales fp16)")))
    return found


def _qdq_scale(g: _Graph, n: onnx.NodeProto) -> Finding | None:
    scale = g.const(n.input[1])
    if scale is None:
        return Finding("qdq-zero-point", WARNING, _node_name(n), (
            f"scale {n.input[1]!r} is computed in the graph: TensorRT takes it, but needs "
            f"all its values > 0, which cannot be checked here"))
    if (scale <= 0).any():
        return Finding("qdq-zero-point", ERROR, _node_name(n), (
            f"scale {n.input[1]!r} must have all values > 0"))
    return None


def _qdq_zero_point(g: _Graph, n: onnx.NodeProto) -> Finding | None:
    name = n.input[2] if len(n.input) > 2 else ""
    if not name:
        return None
    zero = g.const(name)
    if zero is None:
        runtime = name in g.inputs
        return Finding("qdq-zero-point", ERROR if runtime else WARNING, _node_name(n), (
            f"zero point {name!r} is "
            + ("a graph input, not a build-time constant" if runtime else
               "computed in the graph; TensorRT needs a build-time constant of zeros")
            + " (TensorRT quantizes symmetrically)"))
    if zero.astype(np.int64).any():
        return Finding("qdq-zero-point", ERROR, _node_name(n), (
            f"zero point {name!r} is {zero.ravel()[:4].tolist()} ({_type_name(g.dtype(name))})"
            f"; TensorRT quantizes symmetrically: zero points must be constant 0"))
    return None


def _qdq_zero_points(g: _Graph) -> list[Finding]:
    checks = [check(g, n) for n in g.g.node if n.op_type in _QDQ
              for check in (_qdq_scale, _qdq_zero_point)]
    return [f for f in checks if f is not None]


def _weight_source(g: _Graph, n: onnx.NodeProto) -> str | None:
    """The constant a Q/DQ quantizes: its input's, or for a DQ after a Q, the Q's input's."""
    data = n.input[0]
    q = g.producer.get(data)
    if n.op_type == "DequantizeLinear" and q is not None and q.op_type == "QuantizeLinear":
        data = q.input[0]
    return g.constant_source(data)


def _weight_axis(user: onnx.NodeProto, axis: int) -> str | None:
    """Why per-channel weight scales on `axis` are unsure for `user`, or None if fine."""
    if user.op_type == "ConvTranspose":
        return (f"per-channel ConvTranspose weights (axis {axis}): TensorRT's deconvolution "
                f"kernels assume per-input-channel scales and NVIDIA does not support "
                f"per-output-channel ones (NVIDIA/TensorRT #2380, #1694); quantize "
                f"ConvTranspose weights per tensor")
    if axis != 0:
        return (f"quantizes Conv weights along axis {axis}; TensorRT takes per-channel "
                f"weight scales on the output channels (axis 0)")
    return None


def _qdq_axes(g: _Graph) -> list[Finding]:
    found = []
    for n in g.g.node:
        scale = g.const(n.input[1]) if n.op_type in _QDQ else None
        if scale is None or scale.size <= 1:
            continue
        source = _weight_source(g, n)
        if source is None:
            found.append(Finding("qdq-axis", ERROR, _node_name(n), (
                f"per-channel scales on activation {n.input[0]!r}: TensorRT quantizes only "
                f"weights per channel")))
            continue
        dims = list(g.consts[source].dims)
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        axis = axis % len(dims) if dims else axis
        if not dims or dims[axis] != scale.size:
            found.append(Finding("qdq-axis", ERROR, _node_name(n), (
                f"{scale.size} scales for axis {axis} of a {dims} weight")))
        for user in g.consumers.get(n.output[0], []):
            why = _weight_axis(user, axis) if user.op_type in _WEIGHTED and \
                user.input[1] == n.output[0] else None
            if why:
                found.append(Finding("qdq-axis", WARNING, _node_name(n), why))
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
    convs = [n for n in g.g.node if n.op_type in _WEIGHTED]
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


def check_onnx(model: onnx.ModelProto | str | Path, profiled_inputs: Collection[str] = (),
               fp16_body: bool = False) -> list[Finding]:
    """Every TensorRT rule `model` breaks (errors first). `profiled_inputs`: inputs the build
    gives an optimisation profile (their dynamic dimensions are then fine); `fp16_body`: a
    Q/DQ graph must dequantize to fp16 (what `lgcnet build` builds for INT8)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    g = _Graph(model)
    found = [*_uint8_inputs(g), *_uint8_outputs(g), *_operators(g), *_qdq_types(g),
             *_qdq_body(g, fp16_body), *_qdq_zero_points(g), *_qdq_axes(g),
             *_dynamic_shapes(g, profiled_inputs), *_fp16_islands(g)]
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
