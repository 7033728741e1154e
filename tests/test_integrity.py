"""Exported ONNX files carry a weights digest that loading checks; graphs must match their
metadata; export refuses settings no model could run with."""

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lgcnet_deploy import Segmenter
from lgcnet_deploy.artifact.integrity import (
    DIGEST_KEY,
    IntegrityError,
    UnverifiedModelWarning,
    digest_status,
    stamp_weights_digest,
    weights_digest,
)
from lgcnet_deploy.core.classes import CAMVID, CITYSCAPES
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.export.pipeline import export_onnx
from lgcnet_deploy.model.genotype import load_genotype
from lgcnet_deploy.model.network import LGCNet

SIZE = (64, 96)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_like_net):
    meta = ModelMeta.for_dataset(CAMVID, input_size=SIZE, input_format=INPUT_UINT8_NHWC_BGR,
                                 output_kind=OUTPUT_ARGMAX)
    return export_onnx(trained_like_net, meta, tmp_path_factory.mktemp("i") / "m.onnx")


def _rewrite(src, dst, edit):
    model = onnx.load(str(src))
    edit(model)
    onnx.save(model, str(dst))
    return dst


def _bump_first_weight(model):
    init = model.graph.initializer[0]
    w = numpy_helper.to_array(init).copy()
    w.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(w, init.name))


def test_export_records_a_digest_that_verifies(exported):
    status = digest_status(exported)
    assert status["ok"] is True and len(status["recorded"]) == 64
    props = {p.key for p in onnx.load(str(exported)).metadata_props}
    assert DIGEST_KEY in props


def test_digest_covers_weights_not_metadata(exported):
    model = onnx.load(str(exported))
    before = weights_digest(model.SerializeToString())
    helper.set_model_props(model, {"lgcnet.note": '"edited"'})
    assert weights_digest(model.SerializeToString()) == before
    _bump_first_weight(model)
    assert weights_digest(model.SerializeToString()) != before


def test_changed_weights_are_refused_unless_verify_is_off(exported, tmp_path, real_frames):
    changed = _rewrite(exported, tmp_path / "changed.onnx", _bump_first_weight)
    with pytest.raises(IntegrityError, match=r"changed\.onnx: weights differ.*--no-verify"):
        Segmenter(changed)
    with Segmenter(changed, verify=False) as seg:
        assert seg.predict(real_frames[0]).mask.shape == real_frames[0].shape[:2]


def test_file_without_digest_loads_with_one_warning(exported, tmp_path):
    def drop_digest(model):
        kept = [(p.key, p.value) for p in model.metadata_props if p.key != DIGEST_KEY]
        del model.metadata_props[:]
        helper.set_model_props(model, dict(kept))

    legacy = _rewrite(exported, tmp_path / "legacy.onnx", drop_digest)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            Segmenter(legacy).close()
    unverified = [w for w in caught if issubclass(w.category, UnverifiedModelWarning)]
    assert len(unverified) == 1 and "legacy.onnx" in str(unverified[0].message)


def test_rewritten_weights_verify_after_restamping(exported, tmp_path):
    """What FP16/INT8 converters do: rewrite initializers, then restamp."""
    stale = _rewrite(exported, tmp_path / "stale.onnx", _bump_first_weight)
    assert digest_status(stale)["ok"] is False
    fresh = _rewrite(stale, tmp_path / "fresh.onnx", stamp_weights_digest)
    assert digest_status(fresh)["ok"] is True
    Segmenter(fresh).close()


def _foreign_model(path, classes_out: int, output_kind: str, meta: ModelMeta):
    """A non-LGCNet graph (one 1x1 conv) carrying `meta` copied from another model."""
    h, w = meta.input_size
    weight = np.zeros((classes_out, 3, 1, 1), np.float32)
    bias = np.zeros(classes_out, np.float32)
    bias[-1] = 1.0  # the last class wins everywhere
    nodes = [helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Transpose", ["f"], ["x"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["x", "w", "b"], ["logits"])]
    if output_kind == OUTPUT_ARGMAX:
        nodes += [helper.make_node("ArgMax", ["logits"], ["a"], axis=1, keepdims=0),
                  helper.make_node("Cast", ["a"], ["output"], to=TensorProto.INT32)]
        out = helper.make_tensor_value_info("output", TensorProto.INT32, [1, h, w])
    else:
        nodes[-1].output[0] = "output"
        out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, classes_out, h, w])
    graph = helper.make_graph(
        nodes, "foreign", [helper.make_tensor_value_info("input", TensorProto.UINT8,
                                                         [1, h, w, 3])], [out],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, meta.replace(output_kind=output_kind).to_props())
    onnx.save(stamp_weights_digest(model), str(path))
    return path


def test_foreign_logits_model_with_copied_metadata_is_refused(tmp_path):
    meta = ModelMeta.for_dataset(CAMVID, input_size=SIZE, input_format=INPUT_UINT8_NHWC_BGR)
    path = _foreign_model(tmp_path / "foreign.onnx", CITYSCAPES.num_classes, "logits", meta)
    with pytest.raises(IntegrityError, match=r"output shape \[1, 19, 64, 96\].*11 classes"):
        Segmenter(path)


def test_foreign_argmax_model_is_refused_at_its_first_frame(tmp_path, real_frames):
    meta = ModelMeta.for_dataset(CAMVID, input_size=SIZE, input_format=INPUT_UINT8_NHWC_BGR)
    path = _foreign_model(tmp_path / "foreign.onnx", CITYSCAPES.num_classes, "argmax", meta)
    with Segmenter(path) as seg, pytest.raises(IntegrityError, match=r"class id 18.*11 classes"):
        seg.predict(real_frames[0])


def test_metadata_input_size_must_match_the_graph(tmp_path):
    meta = ModelMeta.for_dataset(CAMVID, input_size=SIZE, input_format=INPUT_UINT8_NHWC_BGR)
    path = _foreign_model(tmp_path / "m.onnx", CAMVID.num_classes, "argmax", meta)
    _rewrite(path, path, lambda m: helper.set_model_props(
        m, {**{p.key: p.value for p in m.metadata_props},
            **meta.replace(input_size=(360, 480), output_kind="argmax").to_props()}))
    with pytest.raises(IntegrityError, match="input shape"):
        Segmenter(path)


@pytest.mark.parametrize("kw, words", [
    ({"batch": 0}, "batch must be"), ({"batch": -2}, "batch must be"),
    ({"size": (0, 96)}, "input size"), ({"size": (64, -1)}, "input size"),
])
def test_export_refuses_impossible_settings(tmp_path, kw, words):
    net = LGCNet(load_genotype(), CAMVID.num_classes).eval()
    meta = ModelMeta.for_dataset(CAMVID, input_size=kw.get("size", SIZE))
    with pytest.raises(ValueError, match=words):
        export_onnx(net, meta, tmp_path / "m.onnx", batch=kw.get("batch", 1))
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("size", [(1, 1), (15, 17)])
def test_network_runs_at_its_smallest_inputs(tmp_path, size):
    """The stem and cells take any H, W >= 1 (stride-2 layers round up; Up x2 crops), so
    export's minimum side is 1, not a multiple of the output stride."""
    net = LGCNet(load_genotype(), CAMVID.num_classes).eval()
    meta = ModelMeta.for_dataset(CAMVID, input_size=size, input_format=INPUT_UINT8_NHWC_BGR,
                                 output_kind=OUTPUT_ARGMAX)
    with Segmenter(export_onnx(net, meta, tmp_path / "m.onnx", simplify=False)) as seg:
        frame = np.full((*size, 3), 128, np.uint8)
        assert seg.predict(frame).mask.shape == size
