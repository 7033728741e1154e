"""The front door: `Segmenter("lgcnet-camvid").predict(source)`, where the source is a frame,
frames, or a path, camera or URL (`runtime/sources.FrameSource` reads those).

Pre/post-processing lives here once for every backend: a backend only declares, through its
metadata, whether it takes uint8 BGR NHWC or normalised float NCHW and whether it returns
logits or a class map. Frames of another aspect than the model's are stretched or
letterboxed (`resize`), and said to be when nobody chose.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lgcnet_deploy.artifact.integrity import IntegrityError
from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.core.exposure import apply_gamma, exposure_gamma
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_LOGITS
from lgcnet_deploy.model.shipped import DEFAULT_MODEL
from lgcnet_deploy.runtime.backends import Backend, load_backend
from lgcnet_deploy.runtime.result import Result
from lgcnet_deploy.runtime.sources import SOURCE_KINDS, FrameSource

RESIZE_MODES = ("stretch", "letterbox")
ASPECT_TOLERANCE = 0.01  # relative aspect difference below which a frame counts as the model's
SOURCES = (f"a frame (HxWx3 uint8 BGR numpy array), a list or NxHxWx3 array of frames, an "
           f"iterable of frames, or {SOURCE_KINDS}")
Frames = np.ndarray | Sequence[np.ndarray]
Source = Frames | str | Path | int | FrameSource | Iterable[np.ndarray]


class GeometryWarning(UserWarning):
    """Frames of another aspect than the model's are being stretched."""


def _paths(source: object) -> bool:
    """A non-empty list or tuple of paths: a source of images, read in order."""
    return (isinstance(source, list | tuple) and bool(source)
            and all(isinstance(s, str | Path) for s in source))


def check_frame(frame: object, index: int | None = None) -> np.ndarray:
    """Validate an OpenCV BGR uint8 HxWx3 frame; raise TypeError/ValueError saying what to do."""
    where = "frame" if index is None else f"frame {index}"
    if frame is None:
        raise TypeError(f"{where} is None (did cv2.imread or VideoCapture.read fail?)")
    if not isinstance(frame, np.ndarray):
        hint = "; a path is a source itself: seg.predict(path)" if isinstance(
            frame, str | Path) else ""
        raise TypeError(f"{where} must be a numpy array (OpenCV BGR image), got "
                        f"{type(frame).__name__}{hint}")
    if frame.size == 0:
        raise BadInputError(f"{where} is empty (shape {frame.shape})")
    if frame.dtype != np.uint8:
        raise TypeError(f"{where} has dtype {frame.dtype}, expected uint8 BGR; for floats in "
                        f"[0, 1] use (frame * 255).clip(0, 255).astype(np.uint8)")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        raise BadInputError(f"{where} is single-channel {frame.shape}; convert with "
                            f"cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)")
    if frame.ndim != 3:
        raise BadInputError(f"{where} has shape {frame.shape}, expected HxWx3 (BGR)")
    if frame.shape[2] == 4:
        raise BadInputError(f"{where} has 4 channels (BGRA/RGBA); convert with "
                            f"cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)")
    if frame.shape[2] != 3:
        raise BadInputError(f"{where} has {frame.shape[2]} channels, expected 3 (BGR)")
    return frame


_DONE = object()  # end of the frames, put by the prefetch worker


class _Prefetch:
    """A daemon thread that reads and prepares frames ahead of the consumer, into a bounded
    queue (with `latest`, a one-slot queue that always holds the newest frame). It never
    blocks without checking `stop`, so `close()` returns within a poll interval (plus the
    read of one frame in progress), and it closes the frame iterator in its own thread (a
    generator cannot be closed from another thread while it runs)."""

    POLL_S = 0.02
    JOIN_S = 2.0  # a source blocked in a read longer than this is left to its read timeout

    def __init__(self, frames: Iterable[np.ndarray], prepare: Callable[[int, np.ndarray], Any],
                 depth: int, latest: bool = False) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=1 if latest else max(1, depth))
        self.latest = latest
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(frames, prepare),
                                       name="lgcnet-prefetch", daemon=True)
        self.thread.start()

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=self.POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _put_newest(self, item: object) -> bool:
        """latest=True: replace the frame the consumer has not taken yet, so a slow consumer
        always gets the newest one and never a backlog."""
        while not self.stop.is_set():
            try:
                self.queue.put_nowait(item)
                return True
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.queue.get_nowait()
        return False

    def _run(self, frames: Iterable[np.ndarray], prepare: Callable) -> None:
        it = None
        put = self._put_newest if self.latest else self._put
        try:
            it = iter(frames)
            for i, frame in enumerate(it):
                if self.stop.is_set() or not put(prepare(i, frame)):
                    return
            self._put(_DONE)
        except BaseException as e:  # re-raised in the consumer, never lost
            self._put(e)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def get(self) -> Any:
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=self.JOIN_S)


class Segmenter:
    """Semantic segmentation of OpenCV frames with any exported LGCNet model.

    `model` is a file (.onnx: ONNX Runtime, .pt: PyTorch, .engine: TensorRT) or a shipped
    model's short name (default "lgcnet-camvid"); `device` is 'cpu' or 'cuda' (and 'tensorrt'
    for ONNX Runtime's TRT provider). `resize` maps frames to the model's input size:
    "stretch" (each side scaled on its own) or "letterbox" (aspect kept, padded with the mean
    colour; the mask covers the frame only); the default stretches and warns once for a frame
    whose aspect differs from the model's. `verify=False` loads an ONNX whose weights no
    longer match the digest recorded at export (for graphs edited on purpose).
    """

    def __init__(self, model: str | Path | Backend = DEFAULT_MODEL, device: str = "cpu",
                 verify: bool = True, resize: str | None = None) -> None:
        if resize is not None and resize not in RESIZE_MODES:
            raise BadInputError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        self.backend = model if isinstance(model, Backend) else load_backend(model, device,
                                                                             verify)
        self.meta = self.backend.meta
        self.resize = resize or "stretch"
        self._warn_aspect = resize is None
        # letterbox padding: the normalisation mean, which the network sees as zero
        self._pad_bgr = np.round(np.asarray(self.meta.mean_rgb[::-1]) * 255).astype(np.uint8)
        self.speed: dict[str, float] = {}

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.meta.input_size)

    def predict(self, source: Source, *, max_frames: int | None = None,
                latest: bool = False) -> Result | list[Result]:
        """Segment `source`: a frame (HxWx3 BGR uint8) or an image file -> one Result; a list
        or NxHxWx3 batch of frames (run in batches) -> a list; a list of image paths, a
        folder, video, camera index or stream URL -> a list of every frame's Result (a camera
        or stream needs `max_frames`; for long sources iterate `stream()` instead, which keeps
        no frames)."""
        if _paths(source):
            source = FrameSource(source)
        if isinstance(source, np.ndarray | list | tuple):
            _no_option(source, max_frames=max_frames, latest=latest)
            return self._predict_frames(source)
        frames = self._frames(source, max_frames, latest)
        if isinstance(frames, FrameSource) and frames.kind == "image":
            return self._run(list(frames))[0]
        if isinstance(frames, FrameSource) and frames.live and frames.max_frames is None:
            raise BadInputError(f"{frames} never ends: predict() would keep every frame; give "
                                f"max_frames=N, or iterate seg.stream(source)")
        return list(self.stream(frames, latest=latest))

    def __call__(self, source: Source, stream: bool = False, **options: Any
                 ) -> Result | list[Result] | Iterator[Result]:
        """`seg(source)` is `seg.predict(source)`, `seg(source, stream=True)` is
        `seg.stream(source)`."""
        return self.stream(source, **options) if stream else self.predict(source, **options)

    def _predict_frames(self, frames: Frames) -> Result | list[Result]:
        single = not (isinstance(frames, list | tuple)
                      or (isinstance(frames, np.ndarray) and frames.ndim == 4))
        batch = [frames] if single else list(frames)
        if not batch:
            raise BadInputError("no frames given")
        batch = [check_frame(f, None if single else i) for i, f in enumerate(batch)]
        results = []
        step = self.backend.max_batch or len(batch)
        for i in range(0, len(batch), step):
            results += self._run(batch[i:i + step])
        return results[0] if single else results

    def stream(self, source: Source, prefetch: int = 2, *, latest: bool = False,
               max_frames: int | None = None) -> Iterator[Result]:
        """Segment the frames of `source` (anything `predict` takes, or any iterable of
        frames) one by one, pipelined: a worker thread decodes and pre-processes frame t+1
        while the backend infers frame t (OpenCV and the runtimes release the GIL, so the two
        overlap on separate cores). `latest=True` (cameras, streams, your own live iterable)
        keeps only the newest frame waiting, so a slow consumer skips frames instead of
        falling behind; `max_frames` stops a path, camera or URL source after N frames.

        Stopping early (`break`, the generator's `close()`, garbage collection) stops the
        worker at once whatever the queue holds, and closes the frames (releasing a video or
        camera) if they are a generator or a `FrameSource`.
        """
        def prepare(i: int, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            t0 = time.perf_counter()
            x = self.preprocess([check_frame(frame, i)])
            return frame, x, (time.perf_counter() - t0) * 1e3

        worker = _Prefetch(self._frames(source, max_frames, latest), prepare, prefetch, latest)
        try:
            while (item := worker.get()) is not _DONE:
                frame, x, pre_ms = item
                t1 = time.perf_counter()
                y = self.backend.infer(x)
                t2 = time.perf_counter()
                result = self._results([frame], y)
                # preprocess ran on the worker, overlapped with the previous inference
                self._record_speed(result, pre_ms / 1e3, t1, t2, time.perf_counter())
                yield result[0]
        finally:
            worker.close()

    def _frames(self, source: Source, max_frames: int | None,
                latest: bool) -> Iterable[np.ndarray]:
        """The frames of any source: a path, camera or URL opened as a FrameSource, a frame
        or batch as a list; refuses options that do not fit the source."""
        if isinstance(source, np.ndarray):
            _no_option(source, max_frames=max_frames)
            return list(source) if source.ndim == 4 else [source]
        if (isinstance(source, str | Path | int) and not isinstance(source, bool)) or _paths(
                source):
            source = FrameSource(source)
        if isinstance(source, FrameSource):
            source.max_frames = max_frames if max_frames is not None else source.max_frames
            if latest and not source.live:
                raise BadInputError(f"latest=True skips frames to keep up with a camera or "
                                    f"stream; {source} would lose frames: leave latest off")
            return source
        if isinstance(source, Iterable) and not isinstance(source, bytes | dict):
            _no_option(source, max_frames=max_frames)
            return source
        raise TypeError(f"source must be {SOURCES}; got {type(source).__name__}")

    def _run(self, frames: list[np.ndarray]) -> list[Result]:
        t0 = time.perf_counter()
        x = self.preprocess(frames)
        t1 = time.perf_counter()
        y = self.backend.infer(x)
        t2 = time.perf_counter()
        results = self._results(frames, y)
        self._record_speed(results, t1 - t0, t1, t2, time.perf_counter())
        return results

    def _record_speed(self, results: list[Result], pre_s: float, t1: float, t2: float,
                      t3: float) -> None:
        """`speed` (ms per frame and stage) of `results`, for the Segmenter and each Result:
        preprocessing took `pre_s`, inference t1..t2 and postprocessing t2..t3 seconds."""
        n = len(results)
        self.speed = {"preprocess": pre_s * 1e3 / n, "inference": (t2 - t1) * 1e3 / n,
                      "postprocess": (t3 - t2) * 1e3 / n}
        for r in results:
            r.speed = dict(self.speed)

    def _results(self, frames: list[np.ndarray], y: np.ndarray) -> list[Result]:
        sizes = [f.shape[:2] for f in frames]
        for size in sizes:
            self._check_aspect(size)
        masks = self.postprocess(y, sizes)
        if self.meta.output_kind == OUTPUT_LOGITS:  # the frame's own region of the logits
            scores = [s[:, t:t + h, left:left + w] for s, (t, left, h, w) in
                      zip(y, map(self.placement, sizes))]
        else:
            scores = [None] * len(frames)
        name = self.backend.path.name
        return [Result(f, m, self.meta, model=name, scores=s)
                for f, m, s in zip(frames, masks, scores)]

    def placement(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """Where a frame of `size` (H, W) lands in the model input: (top, left, height,
        width); the whole input when stretched, the aspect-kept centre when letterboxed."""
        h, w = self.input_size
        if self.resize == "stretch":
            return 0, 0, h, w
        scale = min(h / size[0], w / size[1])
        fh, fw = min(h, max(1, round(size[0] * scale))), min(w, max(1, round(size[1] * scale)))
        return (h - fh) // 2, (w - fw) // 2, fh, fw

    def _check_aspect(self, size: tuple[int, int]) -> None:
        """Warn, once, that frames of another aspect are stretched (default `resize` only)."""
        h, w = self.input_size
        if not self._warn_aspect or abs(size[1] / size[0] / (w / h) - 1) <= ASPECT_TOLERANCE:
            return
        self._warn_aspect = False
        warnings.warn(
            f"a {size[0]}x{size[1]} frame (aspect {size[1] / size[0]:.2f}) is stretched to the "
            f"model's {h}x{w} input (aspect {w / h:.2f}), which squashes what it shows; "
            f"resize='letterbox' (lgcnet predict --resize letterbox) keeps its geometry, "
            f"resize='stretch' stretches without this warning", GeometryWarning, stacklevel=2)

    def preprocess(self, frames: list[np.ndarray]) -> np.ndarray:
        """Fit each frame into the model's input size (`resize`), brightened as the model
        learnt (its metadata's `exposure_target`, `core.exposure`), and lay out as the model
        wants."""
        x = np.stack([self._fit(f) for f in frames])
        if self.meta.input_format == INPUT_UINT8_NHWC_BGR:
            return x
        mean = np.asarray(self.meta.mean_rgb, np.float32)
        std = np.asarray(self.meta.std_rgb, np.float32)
        rgb = x[..., ::-1].astype(np.float32) * (1.0 / 255.0)
        return np.ascontiguousarray(((rgb - mean) / std).transpose(0, 3, 1, 2))

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        top, left, fh, fw = self.placement(frame.shape[:2])
        # the gamma is read on the whole frame, as training reads it, and applied after the
        # resize, where there are fewer pixels to map
        target = self.meta.exposure_target
        gamma = 1.0 if target is None else exposure_gamma(frame, target)
        if frame.shape[:2] != (fh, fw):
            frame = cv2.resize(frame, (fw, fh), interpolation=cv2.INTER_LINEAR)
        frame = apply_gamma(frame, gamma)
        if (fh, fw) == self.input_size:
            return frame
        canvas = np.empty((*self.input_size, 3), np.uint8)
        canvas[:] = self._pad_bgr
        canvas[top:top + fh, left:left + fw] = frame
        return canvas

    def postprocess(self, y: np.ndarray, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        """Class map per frame: its own region of the model output (`placement`), resized
        (nearest) to the frame's size."""
        labels = y.argmax(1) if self.meta.output_kind == OUTPUT_LOGITS else y
        if labels.size and not 0 <= labels.min() <= labels.max() < self.meta.num_classes:
            raise IntegrityError(
                f"{self.backend.path}: the model output class id {int(labels.max())} but its "
                f"metadata lists {self.meta.num_classes} classes: the metadata belongs to "
                f"another model; re-export it with `lgcnet export`")
        masks = []
        for m, size in zip(labels.astype(np.uint8), sizes):
            top, left, fh, fw = self.placement(size)
            m = m[top:top + fh, left:left + fw]
            masks.append(m if m.shape == tuple(size) else
                         cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_NEAREST))
        return masks

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Segmenter({self.backend!r}, input_size={self.input_size}, resize={self.resize!r})"


def _no_option(source: object, **options: object) -> None:
    """Refuse source options given for a source they do not apply to."""
    given = [k for k, v in options.items() if v not in (None, False)]
    if given:
        raise BadInputError(f"{', '.join(given)} applies to a path, camera or URL source (and "
                            f"latest also to an iterable of live frames), not to "
                            f"{type(source).__name__}")
