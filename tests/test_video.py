import gc
import threading
import time

import cv2
import numpy as np
import pytest
from loopback_stream import closed_port_url, mjpeg_stream

from lgcnet_deploy import Segmenter
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.export.to_onnx import export_onnx
from lgcnet_deploy.runtime.video import (
    FrameSource,
    Mp4Writer,
    SourceError,
    redact,
    segment_video,
    source_kind,
)


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
    out = segment_video(seg, val_folder, tmp_path / "demo.mp4").path
    assert not list(tmp_path.glob("*partial*"))
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



@pytest.mark.parametrize("index, words", [
    (-1, "out of range"),  # cv2.VideoCapture(-1) segfaults this OpenCV: refused before it
    (100, "out of range"),  # OpenCV would read 100+ as a backend code, not a camera
    ("1900", "out of range"),
    (97, "camera 97"),
])
def test_bad_cameras_are_errors_not_crashes(index, words):
    with pytest.raises(SourceError, match=words):
        FrameSource(index)


def test_loopback_stream_that_drops_ends_cleanly_with_its_frame_count(seg, tmp_path):
    with mjpeg_stream(frames=12) as url:
        src = FrameSource(url, timeout_s=5)
        assert src.kind == "stream" and src.live
        with pytest.raises(TypeError, match="no length"):
            len(src)
        run = segment_video(seg, src, tmp_path / "cam.mp4", progress=True)
    # the probe read one connection; the run reads a fresh one up to the drop
    assert run.frames == src.frames_read == 12 and not run.interrupted
    cap = cv2.VideoCapture(str(run.path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()


def test_dead_stream_is_a_clear_error():
    url = closed_port_url()
    t0 = time.perf_counter()
    with pytest.raises(SourceError, match=r"cannot read stream http://127\.0\.0\.1"):
        FrameSource(url, timeout_s=2)
    assert time.perf_counter() - t0 < 5


def test_stream_password_is_redacted():
    assert redact("rtsp://admin:secret@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
    assert source_kind("rtsp://10.0.0.5/live") == "stream" and source_kind("0") == "camera"


def test_cut_short_video_never_stays_under_its_final_name(tmp_path, real_frames):
    out = tmp_path / "sub" / "v.mp4"
    with pytest.raises(RuntimeError, match="boom"), Mp4Writer(out, 10) as w:
        w.write(real_frames[0])
        assert w.partial.is_file() and not out.exists()
        raise RuntimeError("boom")
    assert not out.exists() and not w.partial.exists()
    out.write_bytes(b"previous video")
    with pytest.raises(RuntimeError), Mp4Writer(out, 10) as w:
        w.write(real_frames[0])
        raise RuntimeError("boom")
    assert out.read_bytes() == b"previous video"
    with Mp4Writer(out, 10) as w:
        for f in real_frames:
            w.write(f)
    assert not w.partial.exists() and len(FrameSource(out)) == 3


def test_empty_folder_for_writer_is_not_created(tmp_path):
    with Mp4Writer(tmp_path / "never" / "v.mp4", 10):
        pass
    assert not (tmp_path / "never").exists()


class _Source:
    """A frame iterable that records when its iterator is closed (the source released)."""

    def __init__(self, frame, n=10_000):
        self.frame, self.n, self.closed = frame, n, threading.Event()

    def __iter__(self):
        try:
            for _ in range(self.n):
                yield self.frame
        finally:
            self.closed.set()


# 3 frames, prefetch 2: after the first result the queue holds frames 2 and 3 and the
# worker waits to put the end marker; 10 000: it waits to put frame 4.
@pytest.mark.parametrize("n", [3, 10_000])
@pytest.mark.parametrize("how", ["break", "close", "gc"])
def test_stream_stops_at_once_with_a_full_queue(seg, real_frames, how, n):
    baseline = threading.active_count()
    source = _Source(real_frames[0], n)
    it = seg.stream(source, prefetch=2)
    next(it)
    time.sleep(0.3)  # the worker fills the queue and waits
    t0 = time.perf_counter()
    if how == "break":
        for _ in it:
            break
        del it  # a for loop's break drops the generator: the same as this
    elif how == "close":
        it.close()
    else:
        del it
        gc.collect()
    assert source.closed.wait(1.0), "the frame source was not closed"
    while threading.active_count() > baseline and time.perf_counter() - t0 < 2:
        time.sleep(0.01)
    stopped = time.perf_counter() - t0
    assert threading.active_count() == baseline, "the prefetch thread is still alive"
    assert stopped < 0.5


def test_stream_error_with_full_queue_does_not_hang(seg, real_frames):
    baseline = threading.active_count()
    frames = [real_frames[0]] * 3 + [None]  # the error comes when the queue is full
    it = seg.stream(iter(frames), prefetch=2)
    next(it)
    time.sleep(0.2)
    t0 = time.perf_counter()
    it.close()
    assert time.perf_counter() - t0 < 0.5 and threading.active_count() == baseline


def test_frame_source_releases_capture_when_stream_stops(seg, tmp_path, real_frames):
    video = tmp_path / "v.mp4"
    with Mp4Writer(video, 10) as w:
        for _ in range(20):
            w.write(real_frames[0])
    src = FrameSource(video)
    it = seg.stream(src, prefetch=2)
    next(it)
    it.close()
    assert src.frames_read < 20  # stopped early, generator closed (capture released)


def test_annotated_frames_keep_size(seg, real_frames):
    from lgcnet_deploy.runtime.video import annotate

    img = annotate(seg.predict(real_frames[0]).overlay(), seg.meta, fps=12.3)
    assert img.shape == real_frames[0].shape and img.dtype == np.uint8
