"""The TensorRT-compatibility gate: every ONNX the project writes passes it (the cpu INT8
target excepted: ONNX Runtime-only by design, and flagged for exactly why), the old export and
INT8 patterns and hand-made graphs breaking each rule are flagged (errors for what TensorRT
refuses, warnings for what its parser takes but the gate cannot prove), valid graphs the old
gate refused pass, and `lgcnet build` / `lgcnet check-trt` act on it. No TensorRT needed."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lgcnet_deploy.artifact.engine.trt_operators import (
    SUPPORTED_TYPES,
    TABLE_VERSION,
    UNSUPPORTED,
)
from lgcnet_deploy.artifact.engine.trt_rules import RULES, check_onnx, errors, report
from lgcnet_deploy.cli import EXIT_MISSING_DEPENDENCY, EXIT_USER_INPUT, main
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import (
    INPUT_FLOAT_NCHW_RGB,
    INPUT_UINT8_NHWC_BGR,
    OUTPUT_ARGMAX,
    OUTPUT_LOGITS,
    ModelMeta,
)
from lgcnet_deploy.export.fp16 import convert_fp16
from lgcnet_deploy.export.int8 import calibration_frames, quantize_int8
from lgcnet_deploy.export.pipeline import export_onnx
from lgcnet_deploy.model.checkpoint import load_checkpoint
from lgcnet_deploy.model.shipped import DEFAULT_MODEL, shipped_file

SIZE = (120, 160)


def _rules(findings) -> Counter:
    return Counter((f.rule, f.severity) for f in findings)


# --- every ONNX the project writes ------------------------------------------------------------

@pytest.fixture(scope="module")
def exports(tmp_path_factory, camvid_val) -> dict:
    """fp32/fp16/int8 (both targets) of a uint8-in class-map-out static export, and fp32/fp16
    of a float-in logits-out dynamic-batch export."""
    d = tmp_path_factory.mktemp("gate")
    net, _, _ = load_checkpoint(shipped_file(DEFAULT_MODEL))
    uint8 = ModelMeta.for_dataset(CAMVID, input_size=SIZE, input_format=INPUT_UINT8_NHWC_BGR,
                                  output_kind=OUTPUT_ARGMAX)
    float_io = uint8.replace(input_format=INPUT_FLOAT_NCHW_RGB, output_kind=OUTPUT_LOGITS)
    paths = {"uint8-static-fp32": export_onnx(net, uint8, d / "u8.onnx"),
             "float-dynamic-fp32": export_onnx(net, float_io, d / "f.onnx", dynamic_batch=True)}
    for name in list(paths):
        paths[name.replace("fp32", "fp16")] = convert_fp16(paths[name], d / f"{name}.fp16.onnx")
    frames = calibration_frames(limit=2)
    for target in ("tensorrt", "cpu"):
        paths[f"uint8-static-int8-{target}"] = quantize_int8(
            paths["uint8-static-fp32"], d / f"int8_{target}.onnx", frames, target=target,
            cache_dir=d / "cache")
    # what `lgcnet build --precision int8` builds: the same Q/DQ with an fp16 body
    paths["uint8-static-int8-tensorrt-body"] = convert_fp16(
        paths["uint8-static-int8-tensorrt"], d / "int8_tensorrt.fp16.onnx")
    return paths


@pytest.mark.parametrize("name", ["uint8-static-fp32", "uint8-static-fp16",
                                  "uint8-static-int8-tensorrt",
                                  "uint8-static-int8-tensorrt-body", "float-dynamic-fp32",
                                  "float-dynamic-fp16"])
def test_every_tensorrt_bound_export_passes(exports, name):
    model = onnx.load(str(exports[name]))
    dynamic = name.startswith("float-dynamic")
    assert check_onnx(model, profiled_inputs={"input"}) == []  # not even a warning
    if dynamic:  # built with --batch or --min/--opt/--max: a profile; without, refused
        assert _rules(check_onnx(model)) == {("dynamic-shape", "error"): 1}
    else:
        assert check_onnx(model) == []


def test_cpu_int8_target_is_flagged_for_exactly_its_encoding(exports):
    rules = _rules(check_onnx(exports["uint8-static-int8-cpu"]))
    # ONNX Runtime's default QDQ: uint8 activations with zero points, int32 biases, and
    # per-channel ConvTranspose weights
    assert set(rules) == {("qdq-type", "error"), ("qdq-zero-point", "error"),
                          ("qdq-axis", "warning")}


def test_int8_engines_are_built_from_an_fp16_body(exports, real_frames, tmp_path):
    """Strongly typed TensorRT dequantizes to the scale's type: the quantiser's file (fp32
    scales, right for ONNX Runtime) is refused for a build, the converted one passes with
    fp16 scales and body, and computes the same masks (ONNX Runtime without its graph
    optimisations, which mis-handle fp16 Q/DQ graphs on the CPU)."""
    fp32_body, body = (onnx.load(str(exports[k])) for k in (
        "uint8-static-int8-tensorrt", "uint8-static-int8-tensorrt-body"))
    found = check_onnx(fp32_body, fp16_body=True)
    assert _rules(found) == {("qdq-body", "error"): 1} and "run in fp32" in found[0].message
    assert check_onnx(body, fp16_body=True) == []
    inits = {i.name: i.data_type for i in body.graph.initializer}
    assert {inits[n.input[1]] for n in body.graph.node if n.op_type in
            ("QuantizeLinear", "DequantizeLinear")} == {TensorProto.FLOAT16}
    assert ModelMeta.from_props({p.key: p.value for p in body.metadata_props}).precision == \
        "int8"
    from lgcnet_deploy.export.pipeline import ArtifactSpec, Work, plan_artifact, run_steps

    plan = plan_artifact(exports["uint8-static-int8-tensorrt"], tmp_path / "x.engine",
                         ArtifactSpec(precision="int8"))
    built = run_steps(Work(), plan, last="precision")  # what the engine step gets
    assert built.path.name == "x.fp16.onnx" and built.meta.precision == "int8"
    assert check_onnx(onnx.load(str(built.path)), fp16_body=True) == []
    import cv2
    import onnxruntime as ort

    frame = cv2.resize(real_frames[0], SIZE[::-1])[None]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    masks = [ort.InferenceSession(str(exports[k]), options, providers=[
        "CPUExecutionProvider"]).run(None, {"input": frame})[0]
        for k in ("uint8-static-int8-tensorrt", "uint8-static-int8-tensorrt-body")]
    assert (masks[0] == masks[1]).mean() >= 0.97


def test_half_scales_must_match_the_data_they_quantize():
    model = _qdq_conv(bias_dq=False)
    scale = next(i for i in model.graph.initializer if i.name == "s")
    scale.CopyFrom(_init("s", np.asarray(0.02, np.float16)))
    found = [f for f in check_onnx(model) if f.rule == "qdq-body"]
    assert [(f.severity, f.where) for f in found] == [("error", "q_x")]
    assert "FP16 scale on FP32 data" in found[0].message


def test_tensorrt_int8_placement_is_modelopt_like(exports):
    model = onnx.load(str(exports["uint8-static-int8-tensorrt"]))
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    users = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        # activations are quantized only where a weighted layer reads them (other readers
        # of the same tensor share the pair, as ModelOpt's DedicatedQDQPair=False does)
        after = {u.op_type for dq in users[q.output[0]] for u in users[dq.output[0]]}
        assert after & {"Conv", "ConvTranspose"}, (q.name, after)
    for n in model.graph.node:
        if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 2:
            assert n.input[2] in inits and n.input[2] not in producers  # float bias


def test_tensorrt_int8_weights_conv_per_channel_conv_transpose_per_tensor(exports):
    model = onnx.load(str(exports["uint8-static-int8-tensorrt"]))
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    scales = {}
    for n in model.graph.node:  # the classifier and after stay float (weights initializers)
        if n.op_type in ("Conv", "ConvTranspose") and n.input[1] in producers:
            dq = producers[n.input[1]]
            assert dq.op_type == "DequantizeLinear" and inits[dq.input[0]].dtype == np.int8
            scales.setdefault(n.op_type, []).append((inits[dq.input[1]].size,
                                                     inits[dq.input[0]].shape))
    # TensorRT's deconvolution takes no per-output-channel (axis 1) weight scales
    assert scales["ConvTranspose"] and all(size == 1 for size, _ in scales["ConvTranspose"])
    assert all(size == shape[0] for size, shape in scales["Conv"] if shape[0] > 1)


# --- the old patterns ---------------------------------------------------------------------------

def _model(nodes, inputs, outputs, inits=(), opset=17, domains=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *(
        helper.make_opsetid(d, 1) for d in domains)])
    onnx.checker.check_model(model)
    return model


def _t(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _conv(x, w, y, b=None, name="conv"):
    return helper.make_node("Conv", [x, w] + ([b] if b else []), [y], name=name)


W = np.ones((4, 3, 1, 1), np.float32)


def test_old_export_pattern_uint8_transpose_cast_is_flagged():
    model = _model([
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2], name="Transpose"),
        helper.make_node("Cast", ["nchw"], ["x"], to=TensorProto.FLOAT, name="Cast"),
        _conv("x", "w", "output")],
        [_t("input", TensorProto.UINT8, [1, 8, 8, 3])],
        [_t("output", TensorProto.FLOAT, [1, 4, 8, 8])], [_init("w", W)])
    found = check_onnx(model)
    assert [(f.rule, f.where) for f in found] == [("uint8", "Transpose"), ("uint8", "Transpose")]
    assert "feeds a Transpose" in found[0].message and "not a graph output" in found[1].message
    # the fixed order: Cast first, then Transpose
    fixed = _model([
        helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT, name="Cast"),
        helper.make_node("Transpose", ["f"], ["x"], perm=[0, 3, 1, 2], name="Transpose"),
        _conv("x", "w", "y"), helper.make_node("Cast", ["y"], ["output"], to=TensorProto.UINT8)],
        [_t("input", TensorProto.UINT8, [1, 8, 8, 3])],
        [_t("output", TensorProto.UINT8, [1, 4, 8, 8])], [_init("w", W)])
    assert check_onnx(fixed) == []  # UINT8 as graph input into a Cast and as graph output


def _qdq_conv(bias_dq: bool, zero_point=0, scale=0.1, w_axis=0, op="Conv",
              act_scale=0.02) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(DQ(int8 w)[, DQ(int32 b)]) -> y, symmetric unless told."""
    weight = np.ones((4, 3, 1, 1) if op == "Conv" else (3, 4, 1, 1), np.int8)
    channels = weight.shape[w_axis]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="q_x"),
        helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w", "ws", "wzp"], ["wd"], axis=w_axis,
                         name="dq_w")]
    inits = [_init("s", np.asarray(act_scale, np.float32)), _init("zp", np.int8(zero_point)),
             _init("w", weight),
             _init("ws", np.full(channels, scale, np.float32)),
             _init("wzp", np.zeros(channels, np.int8))]
    if bias_dq:  # quantize_static's default QuantizeBias=True
        nodes.append(helper.make_node("DequantizeLinear", ["b", "bs", "bzp"], ["bd"],
                                      name="dq_bias"))
        inits += [_init("b", np.zeros(4, np.int32)), _init("bs", np.full(4, 0.002, np.float32)),
                  _init("bzp", np.zeros(4, np.int32))]
    else:
        inits.append(_init("b", np.zeros(4, np.float32)))
    nodes.append(helper.make_node(op, ["xd", "wd", "bd" if bias_dq else "b"], ["y"], name=op))
    return _model(nodes, [_t("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                  [_t("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits, opset=19)


def test_old_int8_pattern_int32_bias_dequantize_is_flagged():
    found = check_onnx(_qdq_conv(bias_dq=True))
    assert [(f.rule, f.where) for f in found] == [("qdq-type", "dq_bias")]
    assert "INT32 bias" in found[0].message and "QuantizeBias=False" in found[0].message
    assert check_onnx(_qdq_conv(bias_dq=False)) == []


# --- hand-made graphs breaking each rule ---------------------------------------------------------

def test_unsupported_ops_domains_and_types_are_flagged():
    model = _model([
        helper.make_node("BitShift", ["u", "u"], ["nz"], direction="LEFT", name="bitshift"),
        helper.make_node("Resize", ["i", "", "", "sizes"], ["r"], name="resize_int"),
        helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [_t("x", TensorProto.FLOAT, [1, 3, 4, 4]), _t("i", TensorProto.INT32, [1, 3, 4, 4]),
         _t("u", TensorProto.UINT32, [4])],
        [_t("nz", TensorProto.UINT32, [4]), _t("r", TensorProto.INT32, [1, 3, 8, 8]),
         _t("y", TensorProto.FLOAT, [1, 3, 4, 4])], [_init("sizes", np.array([1, 3, 8, 8]))])
    found = {f.where: (f.severity, f.message) for f in check_onnx(model)}
    assert set(found) == {"bitshift", "resize_int"}
    # a row marked "N" is refused; a type the table does not name is the parser's call
    assert found["bitshift"] == ("error", "onnx-tensorrt lists BitShift as unsupported")
    assert found["resize_int"][0] == "warning"
    assert "Resize on INT32" in found["resize_int"][1] and "FP32, FP16, BF16" in \
        found["resize_int"][1]
    custom = _model([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft",
                                      name="gelu")],
                    [_t("x", TensorProto.FLOAT, [1, 3])], [_t("y", TensorProto.FLOAT, [1, 3])],
                    domains=["com.microsoft"])
    assert _rules(check_onnx(custom)) == {("operator", "error"): 1}
    newer = _model([helper.make_node("Swish", ["x"], ["y"], name="swish")],  # opset 24
                   [_t("x", TensorProto.FLOAT, [1, 3])], [_t("y", TensorProto.FLOAT, [1, 3])],
                   opset=24)
    found = check_onnx(newer)
    assert _rules(found) == {("operator", "warning"): 1}
    assert "not in onnx-tensorrt docs/operators.md, TensorRT 10.15 GA's list" in found[0].message


def test_operator_table_is_the_refreshed_one():
    assert "10.15" in TABLE_VERSION and not set(SUPPORTED_TYPES) & UNSUPPORTED
    assert "INF64" not in SUPPORTED_TYPES["ConstantOfShape"]  # 10.1 GA's typo
    assert {"RMSNormalization", "RotaryEmbedding", "Attention"} <= set(SUPPORTED_TYPES)


def test_shape_and_index_inputs_are_not_held_to_the_ops_data_types():
    """ConstantOfShape's INT64 shape, Gather's indices, Reshape's shape, Resize's sizes,
    Where's condition, TopK's k: none is the op's data; an FP32 graph using them passes."""
    x = _t("x", TensorProto.FLOAT, [1, 3, 4, 4])
    model = _model([
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("ConstantOfShape", ["s"], ["ones"], name="const_of_shape",
                         value=numpy_helper.from_array(np.ones(1, np.float32))),
        helper.make_node("Greater", ["x", "ones"], ["mask"], name="greater"),
        helper.make_node("Where", ["mask", "x", "ones"], ["w"], name="where"),
        helper.make_node("Reshape", ["w", "flat"], ["f"], name="reshape"),
        helper.make_node("Gather", ["f", "idx"], ["g"], axis=1, name="gather"),
        helper.make_node("TopK", ["g", "k"], ["top", "top_i"], name="topk"),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                         name="resize")],
        [x], [_t("y", TensorProto.FLOAT, [1, 3, 8, 8]), _t("top", TensorProto.FLOAT, [1, 2]),
              _t("top_i", TensorProto.INT64, [1, 2])],
        [_init("flat", np.array([1, 48])), _init("idx", np.array([0, 5, 7])),
         _init("k", np.array([2])), _init("sizes", np.array([1, 3, 8, 8]))])
    assert check_onnx(model) == []


def test_uint8_casts_only_to_and_from_float():
    into_int32 = _model([
        helper.make_node("Cast", ["input"], ["i"], to=TensorProto.INT32, name="to_int32"),
        helper.make_node("Cast", ["i"], ["f"], to=TensorProto.FLOAT, name="to_float"),
        _conv("f", "w", "output")],
        [_t("input", TensorProto.UINT8, [1, 3, 8, 8])],
        [_t("output", TensorProto.FLOAT, [1, 4, 8, 8])], [_init("w", W)])
    found = check_onnx(into_int32)
    assert [(f.rule, f.severity, f.where) for f in found] == [("uint8", "error", "to_int32")]
    assert "to INT32; TensorRT documents UINT8 conversions to FP32/FP16 only" in found[0].message
    # a class map cast to UINT8 from ArgMax's INT64: NvInferRuntimeBase.h names only
    # INT8/INT32/BOOL as never converted, so INT64 (newer than that text) is a warning; from
    # float it is documented
    for source, ok in ((None, False), (TensorProto.FLOAT, True)):
        nodes = [_conv("x", "w", "logits"),
                 helper.make_node("ArgMax", ["logits"], ["cls"], axis=1, keepdims=0)]
        if source is not None:
            nodes.append(helper.make_node("Cast", ["cls"], ["clsf"], to=source))
        nodes.append(helper.make_node("Cast", ["clsf" if source else "cls"], ["output"],
                                      to=TensorProto.UINT8, name="to_uint8"))
        model = _model(nodes, [_t("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                       [_t("output", TensorProto.UINT8, [1, 8, 8])], [_init("w", W)])
        found = check_onnx(model)
        assert (found == []) == ok, found
        if not ok:
            assert [(f.rule, f.severity, f.where) for f in found] == [
                ("uint8", "warning", "to_uint8")]
            assert "from a Cast from INT64" in found[0].message


def test_asymmetric_or_runtime_zero_points_and_bad_scales_are_errors():
    found = check_onnx(_qdq_conv(bias_dq=False, zero_point=3))
    assert _rules(found) == {("qdq-zero-point", "error"): 2}  # the Q and the DQ
    assert "is [3] (INT8)" in found[0].message
    found = check_onnx(_qdq_conv(bias_dq=False, act_scale=-0.5))
    assert _rules(found) == {("qdq-zero-point", "error"): 2}
    assert "all values > 0" in found[0].message
    model = _qdq_conv(bias_dq=False)
    model.graph.initializer.remove(next(i for i in model.graph.initializer if i.name == "zp"))
    model.graph.input.append(_t("zp", TensorProto.INT8, []))  # a runtime zero point
    found = check_onnx(model)
    assert _rules(found) == {("qdq-zero-point", "error"): 2}
    assert "a graph input, not a build-time constant" in found[0].message


def _feed_zero_point_through(op: str) -> onnx.ModelProto:
    """_qdq_conv with its activation zero point made by Constant -> `op` -> Q/DQ."""
    model = _qdq_conv(bias_dq=False)
    model.graph.initializer.remove(next(i for i in model.graph.initializer if i.name == "zp"))
    zero = helper.make_node("Constant", [], ["zp_c"], value=numpy_helper.from_array(
        np.array(0, np.int8 if op == "Identity" else np.int32)))
    attrs = {"to": TensorProto.INT8} if op == "Cast" else {}
    model.graph.node.insert(0, helper.make_node(op, ["zp_c"], ["zp"], **attrs))
    model.graph.node.insert(0, zero)
    onnx.checker.check_model(model)
    return model


def test_what_the_parser_finds_through_identity_or_cast_passes():
    # getWeightsFromIdentityOrConstant: Constant -> Identity/Cast -> Q/DQ zero points
    for op in ("Identity", "Cast"):
        assert check_onnx(_feed_zero_point_through(op)) == [], op


def test_computed_scales_and_zero_points_are_warnings():
    # a tensor scale (the parser takes it) and a zero point made by an op the parser does
    # not look through: neither can be checked here, neither is refused
    model = _qdq_conv(bias_dq=False)
    s = next(i for i in model.graph.initializer if i.name == "s")
    s.name = "s_half"
    zp = next(i for i in model.graph.initializer if i.name == "zp")
    zp.name = "zp_src"
    for node in reversed([helper.make_node("Mul", ["s_half", "two"], ["s"], name="scale"),
                          helper.make_node("Neg", ["zp_src"], ["zp_i8"], name="neg"),
                          helper.make_node("Abs", ["zp_i8"], ["zp"], name="abs")]):
        model.graph.node.insert(0, node)
    model.graph.initializer.append(_init("two", np.asarray(2.0, np.float32)))
    onnx.checker.check_model(model)
    found = check_onnx(model)
    assert not errors(found)
    # scale and zero point of the Q and the DQ; Neg and Abs on INT8 make a Q/DQ parameter,
    # which the qdq rules judge, not the operator list
    assert _rules(found) == {("qdq-zero-point", "warning"): 4}
    assert {f.message.split(" is ")[0] for f in found if f.rule == "qdq-zero-point"} == {
        "scale 's'", "zero point 'zp'"}


def test_per_channel_axes():
    # Conv weights per output channel: fine; on another axis: the parser takes it, a warning
    assert check_onnx(_qdq_conv(bias_dq=False)) == []
    found = check_onnx(_qdq_conv(bias_dq=False, w_axis=1))
    assert [(f.rule, f.severity, f.where) for f in found] == [("qdq-axis", "warning", "dq_w")]
    assert "along axis 1" in found[0].message
    # ConvTranspose weights per channel on either axis: NVIDIA's kernels disagree across
    # releases (NVIDIA/TensorRT #2380, #1694); per tensor is what passes
    for axis in (0, 1):
        found = check_onnx(_qdq_conv(bias_dq=False, op="ConvTranspose", w_axis=axis))
        assert [(f.rule, f.severity) for f in found] == [("qdq-axis", "warning")]
        assert "quantize ConvTranspose weights per tensor" in found[0].message
    # per-channel scales on an activation: refused
    act = _qdq_conv(bias_dq=False, act_scale=np.full(3, 0.02, np.float32))
    for n in act.graph.node[:2]:
        n.attribute.append(helper.make_attribute("axis", 1))
    act.graph.initializer.remove(next(i for i in act.graph.initializer if i.name == "zp"))
    act.graph.initializer.append(_init("zp", np.zeros(3, np.int8)))
    assert {(f.rule, f.severity, f.where) for f in check_onnx(act)} == {
        ("qdq-axis", "error", "q_x"), ("qdq-axis", "error", "dq_x")}
    wrong_count = _qdq_conv(bias_dq=False)
    ws = next(i for i in wrong_count.graph.initializer if i.name == "ws")
    ws.CopyFrom(_init("ws", np.full(2, 0.1, np.float32)))
    found = check_onnx(wrong_count)
    assert (found[0].severity, found[0].message) == (
        "error", "2 scales for axis 0 of a [4, 3, 1, 1] weight")


def test_uint8_quantization_is_refused():
    model = _qdq_conv(bias_dq=False)
    zp = next(i for i in model.graph.initializer if i.name == "zp")
    zp.CopyFrom(_init("zp", np.uint8(0)))
    found = {(f.rule, f.where): f for f in check_onnx(model)}
    assert found[("qdq-type", "q_x")].severity == "error"
    # the parser does not refuse it: it warns and quantizes as INT8 (QuantDequantLinearHelper)
    assert "quantizes it as INT8 instead" in found[("qdq-type", "q_x")].message
    assert found[("qdq-type", "dq_x")].message.startswith("dequantizes a UINT8 input")


def test_dynamic_dims_need_a_profile():
    model = _model([_conv("x", "w", "y")], [_t("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                   [_t("y", TensorProto.FLOAT, ["batch", 4, 8, 8])], [_init("w", W)])
    found = check_onnx(model)
    assert [(f.rule, f.where) for f in found] == [("dynamic-shape", "x")]
    assert "['batch']" in found[0].message and "--min/--opt/--max" in found[0].message
    assert check_onnx(model, profiled_inputs={"x"}) == []


def test_fp32_islands_on_full_resolution_in_fp16_graphs_are_warnings():
    # the old FP16 export: logits upsampled in fp32 between two Casts
    model = _model([
        helper.make_node("Conv", ["x", "w"], ["logits"], strides=[2, 2], name="classifier"),
        helper.make_node("Cast", ["logits"], ["l32"], to=TensorProto.FLOAT, name="to_fp32"),
        helper.make_node("Resize", ["l32", "", "", "sizes"], ["up"], mode="linear",
                         name="upsample"),
        helper.make_node("Cast", ["up"], ["y"], to=TensorProto.FLOAT16, name="to_fp16")],
        [_t("x", TensorProto.FLOAT16, [1, 3, 8, 8])], [_t("y", TensorProto.FLOAT16, [1, 4, 8, 8])],
        [_init("w", W.astype(np.float16)), _init("sizes", np.array([1, 4, 8, 8]))])
    found = check_onnx(model)
    assert [(f.rule, f.severity, f.where) for f in found] == [
        ("fp16-island", "warning", "upsample")]  # to_fp32's fp32 tensor is at 4x4
    assert not errors(found) and "fp32 tensor 'up' [1, 4, 8, 8]" in found[0].message


def test_report_cites_each_rules_source():
    assert all(src for _, src in RULES.values())
    text = report(check_onnx(_qdq_conv(bias_dq=True)), "m.onnx")
    assert "source: NVIDIA/TensorRT include/NvInfer.h (IQuantizeLayer, IDequantizeLayer)" in text
    assert text.endswith("m.onnx: 1 error(s), 0 warning(s)")


# --- the CLI: check-trt, and build refusing before TensorRT ---------------------------------------

def test_check_trt_cli_exit_status(tmp_path, capsys):
    bad, good = tmp_path / "old_int8.onnx", tmp_path / "good.onnx"
    onnx.save(_qdq_conv(bias_dq=True), str(bad))
    onnx.save(_qdq_conv(bias_dq=False), str(good))
    assert main(["check-trt", str(bad)]) == 1
    assert "[qdq-type] dq_bias" in capsys.readouterr().out
    assert main(["check-trt", str(good)]) == 0
    assert "TensorRT-compatible" in capsys.readouterr().out
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    assert main(["check-trt", str(tmp_path / "junk.onnx")]) == EXIT_USER_INPUT
    assert "damaged or truncated ONNX model" in capsys.readouterr().err


def test_check_trt_cli_on_constant_of_shape_and_uint8_casts(tmp_path, capsys):
    x = _t("x", TensorProto.FLOAT, [1, 3, 4, 4])
    const_of_shape = _model([
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("ConstantOfShape", ["s"], ["half"],
                         value=numpy_helper.from_array(np.full(1, 0.5, np.float32))),
        helper.make_node("Mul", ["x", "half"], ["y"])], [x], [_t("y", TensorProto.FLOAT,
                                                                [1, 3, 4, 4])])
    uint8_to_int32 = _model([
        helper.make_node("Cast", ["u"], ["i"], to=TensorProto.INT32, name="to_int32"),
        helper.make_node("Cast", ["i"], ["y"], to=TensorProto.FLOAT)],
        [_t("u", TensorProto.UINT8, [1, 4])], [_t("y", TensorProto.FLOAT, [1, 4])])
    for model, name in ((const_of_shape, "cos.onnx"), (uint8_to_int32, "u8.onnx")):
        onnx.save(model, str(tmp_path / name))
    assert main(["check-trt", str(tmp_path / "cos.onnx")]) == 0
    assert "0 error(s), 0 warning(s): TensorRT-compatible" in capsys.readouterr().out
    assert main(["check-trt", str(tmp_path / "u8.onnx")]) == 1
    assert "error: [uint8] to_int32: casts UINT8 graph input 'u' to INT32" in \
        capsys.readouterr().out


def test_build_refuses_a_graph_breaking_a_rule_before_tensorrt(exports, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # the gate runs first
    cpu_int8 = exports["uint8-static-int8-cpu"]
    assert main(["build", str(cpu_int8), "-o", str(tmp_path / "x.engine"),
                 "--precision", "int8"]) == EXIT_USER_INPUT
    err = capsys.readouterr().err
    assert "breaks TensorRT rules; not building it" in err and "[qdq-zero-point]" in err
    assert not (tmp_path / "x.engine").exists()
    assert main(["build", str(exports["uint8-static-int8-tensorrt"]), "-o",
                 str(tmp_path / "x.engine"), "--precision", "int8"]) == EXIT_MISSING_DEPENDENCY
    assert "`tensorrt` is not installed" in capsys.readouterr().err  # passed the gate
    body = onnx.load(str(tmp_path / "x.fp16.onnx"))  # the chain's precision step made it
    assert check_onnx(body, fp16_body=True) == [] and not (tmp_path / "x.engine").exists()


def test_check_trt_summarises_a_cpu_int8_model_by_rule_and_hints_the_target(exports, capsys):
    """Hundreds of findings of a CPU-quantized model: a few per rule, a count of the rest, and
    the re-quantize hint; --limit 0 lists them all."""
    cpu_int8 = str(exports["uint8-static-int8-cpu"])
    assert main(["check-trt", cpu_int8]) == 1
    out = capsys.readouterr().out.splitlines()
    rules = {f.rule for f in check_onnx(onnx.load(cpu_int8))}
    assert len(out) <= 4 * len(rules) + 2 and any("more like it" in line for line in out)
    assert "--target tensorrt" in out[-1] and out[-1].startswith("hint:")
    assert main(["check-trt", cpu_int8, "--limit", "0"]) == 1
    assert len(capsys.readouterr().out.splitlines()) > len(out)
