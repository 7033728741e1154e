import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import (
    INPUT_FLOAT_NCHW_RGB,
    INPUT_UINT8_NHWC_BGR,
    OUTPUT_ARGMAX,
    OUTPUT_LOGITS,
    ModelMeta,
)
from lgcnet_deploy.export.pipeline import export_onnx
from lgcnet_deploy.export.to_onnx import ExportError
from lgcnet_research.train.data import normalize

COMBOS = [(i, o) for i in (INPUT_UINT8_NHWC_BGR, INPUT_FLOAT_NCHW_RGB)
          for o in (OUTPUT_LOGITS, OUTPUT_ARGMAX)]


def _meta(genotype, input_format, output_kind, size=(360, 480)):
    return ModelMeta.for_dataset(CAMVID, input_size=size, genotype_hash=genotype.hash,
                                 input_format=input_format, output_kind=output_kind)


@pytest.fixture(scope="module", params=COMBOS, ids=lambda c: f"{c[0]}-{c[1]}")
def exported(request, tmp_path_factory, trained_like_net, genotype):
    fmt, kind = request.param
    path = tmp_path_factory.mktemp("onnx") / f"{fmt}-{kind}.onnx"
    export_onnx(trained_like_net, _meta(genotype, fmt, kind), path, batch=3)
    return path, fmt, kind


def _torch_logits(net, frames):
    with torch.no_grad():
        return net(torch.stack([normalize(f) for f in frames])).numpy()


def _ort_input(frames, fmt):
    x = np.stack(frames)
    return x if fmt == INPUT_UINT8_NHWC_BGR else torch.stack(
        [normalize(f) for f in frames]).numpy()


def test_onnx_is_checked_simplified_and_tagged(exported, genotype):
    path, fmt, kind = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops  # folded before export
    assert "Identity" not in ops  # onnxsim cleaned up
    assert ("ArgMax" in ops) == (kind == OUTPUT_ARGMAX)
    meta = ModelMeta.from_props({p.key: p.value for p in proto.metadata_props})
    assert meta.genotype_hash == genotype.hash and meta.classes == CAMVID.classes
    assert (meta.input_format, meta.output_kind, meta.input_size) == (fmt, kind, (360, 480))


def test_ort_parity_with_pytorch_on_real_frames(exported, trained_like_net, real_frames):
    path, fmt, kind = exported
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": _ort_input(real_frames, fmt)})[0]
    ref = _torch_logits(trained_like_net, real_frames)
    if kind == OUTPUT_LOGITS:
        assert out.shape == ref.shape
        # uint8 input is normalised in-graph: same math, different rounding order, so the
        # bound scales with the logits (fp32 rounding through 14 cells: ~1e-5 relative)
        assert np.abs(out - ref).max() <= 3e-5 * max(1.0, float(np.abs(ref).max()))
    else:
        assert out.dtype == np.int32 and out.shape == (3, 360, 480)
        assert (out == ref.argmax(1)).mean() >= 0.999


def test_dynamic_batch(tmp_path, trained_like_net, genotype, real_frames):
    path = export_onnx(trained_like_net, _meta(genotype, INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX),
                       tmp_path / "dyn.onnx", dynamic_batch=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert isinstance(sess.get_inputs()[0].shape[0], str)
    for n in (1, 3):
        assert sess.run(None, {"input": np.stack(real_frames[:n])})[0].shape == (n, 360, 480)


def test_odd_paper_size_exports(tmp_path, genotype):
    from lgcnet_deploy.model.network import LGCNet

    net = LGCNet(genotype, 19).eval()
    meta = _meta(genotype, INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, (769, 1537))
    path = export_onnx(net, meta.replace(classes=tuple(map(str, range(19))),
                                         palette_rgb=((0, 0, 0),) * 19), tmp_path / "p.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": np.zeros((1, 769, 1537, 3), np.uint8)})[0]
    assert y.shape == (1, 769, 1537)


def test_failed_export_keeps_existing_file(tmp_path, trained_like_net, genotype):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous model")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(trained_like_net, _meta(genotype, INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX),
                    path, opset=11)
    broken = torch.nn.Sequential(torch.nn.Conv2d(5, 5, 1))  # wrong channel count
    with pytest.raises(ExportError):
        export_onnx(broken, _meta(genotype, INPUT_FLOAT_NCHW_RGB, OUTPUT_LOGITS), path)
    assert path.read_bytes() == b"previous model"
    assert not list(tmp_path.glob("*.partial"))


def test_a_shipped_name_exports_from_its_checkpoint(tmp_path):
    """A shipped model's short name resolves to its checkpoint, re-exported at another size
    (not mistaken for an ONNX source because the name resolved to a path)."""
    from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact

    artifact = make_artifact("lgcnet-camvid", tmp_path / "small.onnx",
                             ArtifactSpec(input_size=(64, 96)))
    assert artifact.meta.input_size == (64, 96) and artifact.path.is_file()


def _tiny_onnx(path, precision: str, dq_scale=None):
    """A one-node ONNX with lgcnet metadata of `precision`; with `dq_scale` (a numpy scalar)
    a DequantizeLinear whose scale has that dtype (fp32: the quantiser's body, fp16: the
    body an engine is built from)."""
    from onnx import TensorProto, helper, numpy_helper

    meta = ModelMeta.for_dataset(CAMVID).replace(precision=precision)
    x = helper.make_tensor_value_info("input", TensorProto.INT8, [1, 4])
    if dq_scale is None:
        nodes, inits, out_type = [helper.make_node("Identity", ["input"], ["output"])], [], \
            TensorProto.INT8
    else:
        nodes = [helper.make_node("DequantizeLinear", ["input", "s"], ["output"])]
        inits = [numpy_helper.from_array(dq_scale, "s")]
        out_type = helper.np_dtype_to_tensor_dtype(dq_scale.dtype)
    y = helper.make_tensor_value_info("output", out_type, [1, 4])
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 19)])
    helper.set_model_props(model, meta.to_props())
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("have,want,files", [
    ("fp32", "fp16", (None, "e.fp16.onnx")),
    ("fp32", "fp32", (None, None)),
    ("fp16", "fp16", (None, None)),  # already FP16: built as it is
    ("fp32", "int8", ("e.int8.onnx", "e.fp16.onnx")),  # quantized, then its fp16 body
    ("qdq-fp32-body", "int8", (None, "e.fp16.onnx")),  # `lgcnet quantize`'s file
    ("qdq-fp16-body", "int8", (None, None)),  # already what the engine runs
    ("checkpoint", "fp16", (None, "e.fp16.onnx")),
    ("checkpoint", "int8", ("e.int8.onnx", "e.fp16.onnx")),
])
def test_the_plan_brings_an_engines_source_to_its_precision(have, want, files, tmp_path):
    """The one place precision is decided for an engine: what the precision step converts
    (quantized, fp16 files; None: nothing) from each kind of source."""
    from lgcnet_deploy.export.pipeline import ArtifactSpec, plan_artifact

    scales = {"qdq-fp32-body": np.float32(0.1), "qdq-fp16-body": np.float16(0.1)}
    source = "lgcnet-camvid" if have == "checkpoint" else _tiny_onnx(
        tmp_path / "m.onnx", "int8" if have in scales else have, scales.get(have))
    plan = plan_artifact(source, tmp_path / "e.engine", ArtifactSpec(precision=want))
    got = tuple(None if p is None else p.name for p in (plan.quantized_onnx, plan.fp16_onnx))
    assert got == files


def test_an_engines_source_the_chain_cannot_convert_is_refused_saying_what_to_run(tmp_path):
    from lgcnet_deploy.export.pipeline import (
        ArtifactError,
        ArtifactSpec,
        make_engine,
        plan_artifact,
    )

    fp16 = _tiny_onnx(tmp_path / "m16.onnx", "fp16")
    with pytest.raises(ArtifactError, match=r"m16.onnx is an fp16 model; an fp32 engine is "
                                            r"built from the fp32 ONNX: `lgcnet export"):
        plan_artifact(fp16, tmp_path / "e.engine", ArtifactSpec(precision="fp32"))
    fp32 = _tiny_onnx(tmp_path / "m.onnx", "fp32")
    with pytest.raises(ArtifactError, match=r"no Q/DQ nodes: .*`lgcnet quantize .*m.onnx -o "
                                            r".*e.int8.onnx --target tensorrt`.*TensorRT 11"):
        make_engine(fp32, tmp_path / "e.engine", "int8")  # `lgcnet build` never calibrates
    with pytest.raises(ArtifactError, match="takes an ONNX model"):
        make_engine("lgcnet-camvid", tmp_path / "e.engine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m16.onnx"]
