import gc
import threading
import time

import cv2
import numpy as np
import pytest
from loopback_stream import closed_port_url, mjpeg_stream

from lgcnet_deploy import Segmenter
from lgcnet_deploy.cli.commands.predict import segment_video
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.errors import DamagedFileError
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_ARGMAX, ModelMeta
from lgcnet_deploy.export.pipeline import export_onnx
from lgcnet_deploy.runtime.drawing import Mp4Writer
from lgcnet_deploy.runtime.sources import FrameSource, SourceError, redact, source_kind


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
    with pytest.raises(DamagedFileError, match="damaged or truncated video"):
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


class _CtrlCAfter:
    """The Segmenter `seg`, its stream stopped by Ctrl-C once `frames` results are out."""

    def __init__(self, seg: Segmenter, frames: int) -> None:
        self.seg, self.frames = seg, frames

    def stream(self, src):
        for i, result in enumerate(self.seg.stream(src)):
            if i == self.frames:
                raise KeyboardInterrupt
            yield result


def test_ctrl_c_keeps_a_live_recording_once_it_has_a_frame(seg, tmp_path):
    recording = []
    with mjpeg_stream(frames=50) as url:
        run = segment_video(_CtrlCAfter(seg, 3), FrameSource(url, timeout_s=5),
                            tmp_path / "cam.mp4", on_recording=recording.append)
        assert run.interrupted and run.frames == 3 and recording == [run.path]
        with pytest.raises(KeyboardInterrupt):  # nothing recorded yet: nothing to keep
            segment_video(_CtrlCAfter(seg, 0), FrameSource(url, timeout_s=5),
                          tmp_path / "early.mp4", on_recording=recording.append)
    assert recording == [run.path] and not list(tmp_path.glob("early*"))


def test_dead_stream_is_a_clear_error(monkeypatch):
    url = closed_port_url()
    opened = []

    def recording(*args):
        opened.append(args)
        return real(*args)

    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", recording)
    with pytest.raises(SourceError, match=r"cannot read stream http://127\.0\.0\.1.*within 2 s"):
        FrameSource(url, timeout_s=2)
    # bounded by the timeout, however long a loaded machine takes: OpenCV is told it
    assert opened[0][2] == [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 2000, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                            2000]


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


HANG_S = 30.0  # what counts as a hang: a guard, not a measurement


def wait_for(condition) -> None:
    """Poll `condition` until it holds or HANG_S pass (the assertion after it says which)."""
    deadline = time.monotonic() + HANG_S
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


class _Source:
    """A frame iterable that records when its iterator is closed (the source released)."""

    def __init__(self, frame, n=10_000):
        self.frame, self.n, self.closed, self.read = frame, n, threading.Event(), 0

    def __iter__(self):
        try:
            for _ in range(self.n):
                self.read += 1
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
    wait_for(lambda: source.read >= min(n, 4))  # the worker fills the queue and waits
    if how == "break":
        for _ in it:
            break
        del it  # a for loop's break drops the generator: the same as this
    elif how == "close":
        it.close()
    else:
        del it
        gc.collect()
    assert source.closed.wait(HANG_S), "the frame source was not closed"
    wait_for(lambda: threading.active_count() == baseline)
    assert threading.active_count() == baseline, "the prefetch thread is still alive"
    assert source.read <= min(n, 5)  # stopped at once: the frames queued and one more at most


def test_stream_error_with_full_queue_does_not_hang(seg, real_frames):
    baseline = threading.active_count()
    frames = [real_frames[0]] * 3 + [None]  # the error comes when the queue is full
    it = seg.stream(iter(frames), prefetch=2)
    next(it)
    it.close()
    wait_for(lambda: threading.active_count() == baseline)
    assert threading.active_count() == baseline


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
    from lgcnet_deploy.runtime.drawing import annotate

    img = annotate(seg.predict(real_frames[0]).overlay(), seg.meta, fps=12.3)
    assert img.shape == real_frames[0].shape and img.dtype == np.uint8


def test_fps_meter_smooths_over_its_window_and_agrees_with_the_mean():
    from lgcnet_deploy.runtime.drawing import FpsMeter

    meter, clock = FpsMeter(window=4), [0.0, 0.1, 0.3, 0.4, 0.6, 0.7]  # a fake clock
    shown = [meter.tick(t) for t in clock]
    assert shown[0] is None and shown[1] == pytest.approx(10.0)
    assert shown[-1] == pytest.approx(4 / 0.6)  # the last 4 intervals, not the last one
    assert FpsMeter(window=100).tick(0.0) is None
    steady = FpsMeter()
    assert [steady.tick(i / 20) for i in range(50)][-1] == pytest.approx(20.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, val_folder):
    """A 6-frame MP4 of real CamVid frames."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    with Mp4Writer(path, 15) as w:
        for frame in FrameSource(val_folder):
            w.write(frame)
    return path


def test_predict_takes_an_image_a_folder_and_a_video(seg, val_folder, clip):
    first = sorted(val_folder.iterdir())[0]
    one = seg.predict(first)  # an image file: one Result, like one frame
    assert (one.mask == seg.predict(cv2.imread(str(first))).mask).all()
    folder = seg.predict(val_folder)
    assert len(folder) == 6 and (folder[0].mask == one.mask).all()
    video = seg.predict(clip)
    decoded = list(FrameSource(clip))
    assert len(video) == 6 and all((r.mask == seg.predict(f).mask).all()
                                   for r, f in zip(video, decoded))
    assert len(seg.predict(str(clip), max_frames=2)) == 2


def test_stream_takes_the_same_sources_as_predict(seg, val_folder, clip):
    streamed = list(seg.stream(clip))
    assert [r.mask.tolist() for r in streamed] == [r.mask.tolist() for r in seg.predict(clip)]
    assert len(list(seg.stream(val_folder, max_frames=4))) == 4
    assert len(list(seg(clip, stream=True))) == 6  # ultralytics' spelling
    frame = cv2.imread(str(sorted(val_folder.iterdir())[0]))
    assert len(list(seg.stream(frame))) == 1 and len(list(seg.stream([frame] * 3))) == 3


def test_predict_reads_a_stream_url_for_max_frames(seg):
    with mjpeg_stream(frames=40) as url:
        results = seg.predict(url, max_frames=3)
        assert len(results) == 3 and results[0].mask.shape == (96, 128)
        with pytest.raises(ValueError, match=r"never ends.*max_frames.*stream"):
            seg.predict(url)


@pytest.mark.parametrize("source, exc, words", [
    (3.5, TypeError, r"source must be a frame.*a list .*a video file, a camera index"),
    (b"clip.mp4", TypeError, "got bytes"),
    ("missing.mp4", FileNotFoundError, "source not found: missing.mp4 .a source is an image"),
    (97, SourceError, "camera 97"),
])
def test_wrong_sources_name_the_accepted_kinds(seg, source, exc, words):
    with pytest.raises(exc, match=words):
        seg.predict(source)
    with pytest.raises(exc, match=words):
        next(seg.stream(source))


def test_source_options_that_do_not_fit_are_refused(seg, real_frames, clip):
    with pytest.raises(ValueError, match="max_frames applies to a path"):
        seg.predict(real_frames[0], max_frames=2)
    with pytest.raises(ValueError, match=r"latest=True .*lose frames"):
        seg.predict(clip, latest=True)
    with pytest.raises(TypeError, match=r"frame 1 .*got str; a path is a source itself"):
        seg.predict([real_frames[0], str(clip)])


def test_latest_skips_to_the_newest_frame_for_a_slow_consumer(seg, real_frames):
    taken, delivered = threading.Event(), threading.Event()

    def camera():  # frame i is filled with i; after frame 0 it waits until that was taken
        for i in range(10):
            yield np.full_like(real_frames[0], i)
            if i == 0:
                taken.wait(30)
        delivered.set()  # frames 1-9 arrived while the consumer was busy with frame 0

    got = []
    for r in seg.stream(camera(), latest=True):
        got.append(int(r.frame[0, 0, 0]))
        taken.set()
        assert delivered.wait(30)  # a slow consumer: busy until the camera has sent them all
    assert got == [0, 9]  # the first and the newest frame; the stale ones 1-8 skipped
    everything = [int(r.frame[0, 0, 0]) for r in seg.stream(camera())]
    assert everything == list(range(10))  # without latest, every frame
