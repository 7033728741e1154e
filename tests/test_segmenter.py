import cv2
import numpy as np
import pytest

from lgcnet_deploy import Segmenter
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.formats import UnknownFormatError
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.export.to_onnx import export_onnx
from lgcnet_deploy.model.checkpoint import CheckpointError, save_checkpoint
from lgcnet_deploy.runtime.backends.base import BackendError


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, trained_like_net):
    d = tmp_path_factory.mktemp("models")
    meta = ModelMeta.for_dataset(CAMVID, input_size=(360, 480))
    ckpt = save_checkpoint(d / "m.pt", trained_like_net, meta)
    onnx_meta = meta.replace(genotype_hash=trained_like_net.genotype.hash,
                             input_format=INPUT_UINT8_NHWC_BGR, output_kind=OUTPUT_ARGMAX)
    onnx = export_onnx(trained_like_net, onnx_meta, d / "m.onnx", dynamic_batch=True)
    return {"pt": ckpt, "onnx": onnx}


@pytest.fixture(scope="module", params=["onnx", "pt"])
def seg(request, model_files):
    with Segmenter(model_files[request.param]) as s:
        yield s


@pytest.mark.parametrize("size", [(360, 480), (720, 960), (251, 333)])
def test_predict_real_frames_at_several_sizes(seg, real_frames, size):
    frame = cv2.resize(real_frames[0], (size[1], size[0]))
    r = seg.predict(frame)
    assert r.mask.shape == size and r.mask.dtype == np.uint8
    assert r.mask.max() < CAMVID.num_classes
    assert r.colorize().shape == (*size, 3)
    assert r.overlay(0.4).shape == (*size, 3) and r.overlay(0.4).dtype == np.uint8
    assert set(r.speed) == {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in r.speed.values())
    assert sum(r.class_fractions().values()) == pytest.approx(1.0)


def test_batch_predict_equals_single(seg, real_frames):
    batch = seg.predict(real_frames)
    assert len(batch) == len(real_frames)
    # PyTorch CPU picks other conv kernels per batch size: near-ties may flip a few pixels
    for frame, r in zip(real_frames, batch):
        assert (seg.predict(frame).mask == r.mask).mean() >= 0.999
    as_array = seg.predict(np.stack(real_frames))
    assert all((a.mask == b.mask).mean() >= 0.999 for a, b in zip(as_array, batch))


def test_backends_agree(model_files, real_frames):
    with Segmenter(model_files["onnx"]) as a, Segmenter(model_files["pt"]) as b:
        for f in real_frames:
            assert (a.predict(f).mask == b.predict(f).mask).mean() >= 0.999


@pytest.mark.parametrize("bad, exc, words", [
    (None, TypeError, "None"),
    ("frame.jpg", TypeError, "numpy array"),
    (np.zeros((360, 480), np.uint8), ValueError, "single-channel"),
    (np.zeros((360, 480, 4), np.uint8), ValueError, "BGRA"),
    (np.zeros((360, 480, 3), np.float32), TypeError, "uint8"),
    (np.zeros((0, 480, 3), np.uint8), ValueError, "empty"),
    (np.zeros((360, 480, 2), np.uint8), ValueError, "2 channels"),
])
def test_bad_frames_are_named(seg, bad, exc, words):
    with pytest.raises(exc, match=words):
        seg.predict(bad)


def test_bad_frame_in_a_batch_names_its_index(seg, real_frames):
    with pytest.raises(TypeError, match="frame 1 is None"):
        seg.predict([real_frames[0], None])


def test_bad_model_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        Segmenter(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(BackendError, match="cannot load"):
        Segmenter(corrupt)
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable"):
        Segmenter(foreign)
    other = tmp_path / "model.tflite"
    other.write_bytes(b"x")
    with pytest.raises(UnknownFormatError, match="unsupported model file suffix"):
        Segmenter(other)


def test_onnx_without_metadata_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["input"], ["output"])
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("input", TensorProto.UINT8, [1, 3])],
                              [helper.make_tensor_value_info("output", TensorProto.UINT8, [1, 3])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(BackendError, match="not exported by lgcnet-deploy"):
        Segmenter(path)


def test_unknown_device(model_files):
    with pytest.raises(BackendError, match="unknown device"):
        Segmenter(model_files["onnx"], device="tpu")
    with pytest.raises(BackendError, match="use 'cpu' or 'cuda"):
        Segmenter(model_files["pt"], device="tpu")
