import cv2
import numpy as np
import pytest

from lgcnet_deploy import Segmenter
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.export.to_onnx import export_onnx
from lgcnet_deploy.runtime.video import FrameSource, SourceError, segment_video


@pytest.fixture(scope="module")
def seg(tmp_path_factory, trained_like_net):
    meta = ModelMeta.for_dataset(CAMVID, input_size=(180, 240), input_format=INPUT_UINT8_NHWC_BGR,
                                 output_kind=OUTPUT_ARGMAX)
    with Segmenter(export_onnx(trained_like_net, meta,
                               tmp_path_factory.mktemp("v") / "m.onnx")) as s:
        yield s


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory, camvid_val):
    d = tmp_path_factory.mktemp("frames")
    for p in camvid_val.images[:6]:
        (d / p.name).symlink_to(p)
    return d


def test_stream_equals_sequential_predict_in_order(seg, val_folder):
    frames = list(FrameSource(val_folder))
    streamed = list(seg.stream(iter(frames)))
    assert len(streamed) == len(frames) == 6
    for f, r in zip(frames, streamed):
        assert r.frame is f
        assert (r.mask == seg.predict(f).mask).all()
        assert set(r.speed) == {"preprocess", "inference", "postprocess"}


def test_stream_reports_bad_frame_with_its_index(seg, real_frames):
    with pytest.raises(TypeError, match="frame 1 is None"):
        list(seg.stream(iter([real_frames[0], None, real_frames[1]])))


def test_video_round_trip(seg, val_folder, tmp_path):
    out = segment_video(seg, val_folder, tmp_path / "demo.mp4")
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    ok, frame = cap.read()
    assert ok and frame.shape == (360, 480, 3)
    cap.release()
    src = FrameSource(out)  # the written MP4 is itself a readable source
    assert src.kind == "video" and len(src) == 6 and src.fps == pytest.approx(15.0)
    assert sum(1 for _ in src) == 6


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="source not found"):
        FrameSource(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x01 definitely not a video" * 20)
    with pytest.raises(SourceError, match="cannot read video"):
        FrameSource(broken)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        FrameSource(tmp_path / "empty")
    with pytest.raises(SourceError, match="cannot read camera 97"):
        FrameSource(97)


def test_annotated_frames_keep_size(seg, real_frames):
    from lgcnet_deploy.runtime.video import annotate

    img = annotate(seg.predict(real_frames[0]).overlay(), seg.meta, fps=12.3)
    assert img.shape == real_frames[0].shape and img.dtype == np.uint8
