import json
import warnings

import cv2
import numpy as np
import pytest

from lgcnet_deploy import Segmenter
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.errors import DamagedFileError
from lgcnet_deploy.core.formats import UnknownFormatError
from lgcnet_deploy.core.metadata import (
    INPUT_UINT8_NHWC_BGR,
    OUTPUT_ARGMAX,
    MetadataError,
    ModelMeta,
)
from lgcnet_deploy.export.pipeline import export_onnx
from lgcnet_deploy.model.checkpoint import CheckpointError, save_checkpoint
from lgcnet_deploy.model.shipped import DEFAULT_MODEL, shipped_file
from lgcnet_deploy.runtime.backends import BackendError, shipped_suffix
from lgcnet_deploy.runtime.backends.onnx_runtime import OnnxRuntimeBackend
from lgcnet_deploy.runtime.segmenter import GeometryWarning


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, trained_like_net):
    d = tmp_path_factory.mktemp("models")
    meta = ModelMeta.for_dataset(CAMVID, input_size=(360, 480))
    ckpt = save_checkpoint(d / "m.pt", trained_like_net, meta)
    onnx_meta = meta.replace(genotype_hash=trained_like_net.genotype.hash,
                             input_format=INPUT_UINT8_NHWC_BGR, output_kind=OUTPUT_ARGMAX)
    onnx = export_onnx(trained_like_net, onnx_meta, d / "m.onnx", dynamic_batch=True)
    logits = export_onnx(trained_like_net, onnx_meta.replace(output_kind="logits"),
                         d / "logits.onnx")
    return {"pt": ckpt, "onnx": onnx, "logits": logits}


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
    ([None], TypeError, "frame 0 is None"),
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
    with pytest.raises(DamagedFileError, match="damaged or truncated ONNX model"):
        Segmenter(corrupt)
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="damaged or truncated checkpoint"):
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
    with pytest.raises(MetadataError, match="not exported by lgcnet-deploy"):
        Segmenter(path)


def test_unknown_device(model_files):
    with pytest.raises(BackendError, match="unknown device"):
        Segmenter(model_files["onnx"], device="tpu")
    with pytest.raises(BackendError, match="use 'cpu' or 'cuda"):
        Segmenter(model_files["pt"], device="tpu")


def test_shipped_short_name_runs_its_onnx_as_its_checkpoint_does(real_frames):
    with Segmenter() as seg, Segmenter(shipped_file(DEFAULT_MODEL)) as torch_seg:
        assert isinstance(seg.backend, OnnxRuntimeBackend)
        assert seg.backend.path.name == "lgcnet_camvid.onnx" and DEFAULT_MODEL == "lgcnet-camvid"
        for f in real_frames:
            assert (seg.predict(f).mask == torch_seg.predict(f).mask).mean() >= 0.999
    assert shipped_suffix("cpu") == ".onnx" and shipped_suffix("cuda:0") == ".pt"  # torch here


def test_result_names_masks_repr_and_json(seg, real_frames):
    r = seg.predict(real_frames[0])
    assert r.names == dict(enumerate(CAMVID.classes))
    masks = r.masks
    assert masks.shape == (CAMVID.num_classes, 360, 480) and masks.dtype == bool
    assert (masks.sum(0) == 1).all() and (masks[3] == (r.mask == 3)).all()
    text = repr(r)
    assert text.startswith("Result(360x480, m.") and "ms)" in text and len(text) < 120
    data = json.loads(r.to_json())
    assert data["model"] == seg.backend.path.name and data["shape"] == [360, 480]
    assert sum(data["classes"].values()) == pytest.approx(1.0, abs=1e-5)
    assert set(data["classes"]) == set(CAMVID.classes)
    assert set(data["speed_ms"]) == {"preprocess", "inference", "postprocess"}
    assert "mean_confidence" not in data and r.probs is None and r.confidence is None


def test_result_save_by_suffix_and_plot_with_legend(seg, real_frames, tmp_path):
    r = seg.predict(real_frames[0])
    from PIL import Image

    mask_png = Image.open(r.save(tmp_path / "m.png"))  # indexed: ids as pixels, palette shown
    assert mask_png.mode == "P" and (np.asarray(mask_png) == r.mask).all()
    assert mask_png.getpalette()[:6] == [c for rgb in CAMVID.palette_rgb[:2] for c in rgb]
    overlay = cv2.imread(str(r.save(tmp_path / "o.jpg")))
    assert overlay.shape == (360, 480, 3)
    assert (cv2.imread(str(r.save(tmp_path / "o.png", kind="overlay"))) == r.plot()).all()
    with pytest.raises(ValueError, match="lossless"):
        r.save(tmp_path / "m.jpg", kind="mask")
    with pytest.raises(ValueError, match=r"\.gif"):
        r.save(tmp_path / "m.gif")
    plain, legend = r.plot(0.4, legend=False), r.plot(0.4)
    assert (plain == r.overlay(0.4)).all() and legend.shape == plain.shape
    differs = np.argwhere((legend != plain).any(2))
    (y0, x0), (y1, x1) = differs.min(0), differs.max(0)
    assert len(differs) and (y0 == 0 or y1 == 359) and (x0 == 0 or x1 == 479)  # a corner
    assert (y1 - y0) * (x1 - x0) < 360 * 480 / 4  # and small: only the classes present
    palette = CAMVID.palette_bgr()
    assert (r.colorize()[r.mask == 3] == palette[3]).all()


def test_a_list_of_image_paths_is_a_source(seg, real_frames, tmp_path):
    paths = [str(p) for p in (tmp_path / "a.png", tmp_path / "b.png")]
    for p, frame in zip(paths, real_frames[:2]):
        cv2.imwrite(p, frame)
    results = seg.predict(paths)
    assert [r.mask.shape for r in results] == [f.shape[:2] for f in real_frames[:2]]
    assert (results[1].mask == seg.predict(real_frames[1]).mask).all()


def test_probs_and_confidence_from_a_logits_model(model_files, real_frames):
    frame = cv2.resize(real_frames[0], (240, 180))
    with Segmenter(model_files["logits"]) as seg, Segmenter(model_files["onnx"]) as argmax:
        r = seg.predict(frame)
        assert (r.mask == argmax.predict(frame).mask).mean() >= 0.999
    assert r.probs.shape == (CAMVID.num_classes, 180, 240) and r.probs.dtype == np.float32
    assert np.allclose(r.probs.sum(0), 1.0, atol=1e-4)
    assert (r.probs.argmax(0) == r.mask).mean() >= 0.999
    assert np.allclose(r.confidence, r.probs.max(0), atol=1e-5)
    assert 0 < json.loads(r.to_json())["mean_confidence"] <= 1


def test_another_aspect_warns_once_under_the_default(model_files, real_frames):
    wide = cv2.resize(real_frames[0], (640, 360))  # 16:9 into a 4:3 model
    with Segmenter(model_files["onnx"]) as seg:
        with pytest.warns(GeometryWarning, match=r"360x640 frame .*stretched.*letterbox"):
            assert seg.predict(wide).mask.shape == (360, 640)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            seg.predict(wide)  # once
            seg.predict(real_frames[0])
    for resize in ("stretch", "letterbox"):  # chosen aloud: no warning
        with warnings.catch_warnings(), Segmenter(model_files["onnx"], resize=resize) as seg:
            warnings.simplefilter("error")
            assert seg.predict(wide).mask.shape == (360, 640)
    with pytest.raises(ValueError, match="resize must be one of stretch, letterbox"):
        Segmenter(model_files["onnx"], resize="crop")


def test_letterbox_pads_with_the_mean_and_crops_the_mask_back(model_files, real_frames):
    wide = real_frames[0][45:315]  # 270x480: letterboxed into 360x480 without scaling
    with Segmenter(model_files["onnx"], resize="letterbox") as box, \
            Segmenter(model_files["onnx"], resize="stretch") as stretch:
        assert box.placement((270, 480)) == (45, 0, 270, 480)
        x = box.preprocess([wide])[0]
        assert (x[45:315] == wide).all() and (x[:45] == [104, 116, 124]).all()
        padded = np.concatenate([x[:45], wide, x[315:]])
        assert (box.predict(wide).mask == stretch.predict(padded).mask[45:315]).all()
        same_aspect = cv2.resize(real_frames[1], (640, 480))
        assert (box.predict(same_aspect).mask == stretch.predict(same_aspect).mask).all()
    with Segmenter(model_files["logits"], resize="letterbox") as seg:
        r = seg.predict(cv2.resize(wide, (640, 360)))
        assert r.probs.shape == (CAMVID.num_classes, 360, 640)


def _png_with_every_row_filter(ids: np.ndarray) -> bytes:
    """An indexed PNG of `ids` whose rows use PNG's five filters in turn (as other tools
    write them), to read back."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    h, w = ids.shape
    raw, prev = b"", np.zeros(w, np.int32)
    for y in range(h):
        row, kind = ids[y].astype(np.int32), y % 5
        left = np.concatenate([[0], row[:-1]])
        corner = np.concatenate([[0], prev[:-1]])
        p = left + prev - corner
        pa, pb, pc = abs(p - left), abs(p - prev), abs(p - corner)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, corner))
        pred = [0, left, prev, (left + prev) // 2, paeth][kind]
        raw += bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes()
        prev = row
    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", bytes(range(33)))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_saved_class_maps_read_back_as_ids(tmp_path, camvid_val):
    """Result.save writes an indexed PNG (colours in any viewer, ids as pixel values); the
    SDK reads the ids back, as from any indexed PNG whatever its row filters."""
    from lgcnet_deploy.core.data import read_label

    r = Segmenter(DEFAULT_MODEL).predict(camvid_val[0][0])
    r.save(tmp_path / "m.png")
    assert (read_label(tmp_path / "m.png") == r.mask).all()
    ids = np.random.default_rng(0).integers(0, 11, (10, 17)).astype(np.uint8)
    (tmp_path / "f.png").write_bytes(_png_with_every_row_filter(ids))
    assert (read_label(tmp_path / "f.png") == ids).all()
