import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.export.int8 import calibration_frames, quantize_int8
from lgcnet_deploy.export.to_onnx import export_onnx
from lgcnet_deploy.model.checkpoint import load_checkpoint
from lgcnet_deploy.runtime.segmenter import DEFAULT_MODEL

SIZE = (120, 160)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    # A trained model (a random net's near-tied logits make argmax agreement noise): the
    # hand-written one, for which INT8 is recommended. The narrow default's INT8 cost is
    # measured by `lgcnet_research.parity` (README), not tested here.
    net, _, _ = load_checkpoint(DEFAULT_MODEL.with_name("lgcnet_camvid_handwritten.pt"))
    meta = ModelMeta.for_dataset(CAMVID, input_size=SIZE, input_format=INPUT_UINT8_NHWC_BGR,
                                 output_kind=OUTPUT_ARGMAX)
    return export_onnx(net, meta, tmp_path_factory.mktemp("q") / "fp32.onnx")


@pytest.fixture(scope="module", params=["tensorrt", "cpu"])
def int8(request, fp32, tmp_path_factory, camvid_val):
    d = tmp_path_factory.mktemp("int8")
    out = quantize_int8(fp32, d / f"{request.param}.onnx", calibration_frames(limit=4),
                        target=request.param, cache_dir=d / "cache")
    return out, request.param


def _run(path, frames):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [sess.run(None, {"input": cv2.resize(f, SIZE[::-1])[None]})[0] for f in frames]


def test_qdq_placement_and_metadata(int8):
    path, target = int8
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 50
    producers = {o: n for n in model.graph.node for o in n.output}
    argmax = next(n for n in model.graph.node if n.op_type == "ArgMax")
    resize = producers[argmax.input[0]]  # logits upsampling and ArgMax stay float
    classifier = producers[resize.input[0]]
    assert resize.op_type == "Resize" and classifier.op_type == "Conv"
    assert classifier.input[1] not in producers  # a float weight, not a DequantizeLinear
    assert model.graph.node[0].op_type not in ("QuantizeLinear", "DequantizeLinear")
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    act_zps = [inits[n.input[2]] for n in model.graph.node
               if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]
    if target == "tensorrt":  # TensorRT's explicit quantisation: int8, zero point 0
        assert all(z.dtype == np.int8 and not z.any() for z in act_zps)
    else:
        assert all(z.dtype == np.uint8 for z in act_zps)
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    assert meta.precision == "int8" and meta.extra["calibration"]["target"] == target
    assert meta.classes == CAMVID.classes


def test_int8_agrees_with_fp32_on_real_frames(int8, fp32, real_frames):
    ref, out = _run(fp32, real_frames), _run(int8[0], real_frames)
    agree = np.mean([(a == b).mean() for a, b in zip(ref, out)])
    assert agree >= 0.9, f"int8 vs fp32 argmax agreement {agree:.3f}"


def test_bad_requests(fp32, int8, tmp_path):
    frames = calibration_frames(limit=1)
    with pytest.raises(ValueError, match="unknown target"):
        quantize_int8(fp32, tmp_path / "x.onnx", frames, target="tpu")
    with pytest.raises(ValueError, match="quantise the fp32 export"):
        quantize_int8(int8[0], tmp_path / "x.onnx", frames)
    with pytest.raises(FileNotFoundError, match="calibration list"):
        calibration_frames(tmp_path / "none.txt")
    bad = tmp_path / "list.txt"
    bad.write_text("train/images/nope.jpg\n")
    with pytest.raises(FileNotFoundError, match="missing"):
        calibration_frames(bad)
