"""The front door: `Segmenter("lgcnet.onnx").predict(frame)`.

Pre/post-processing lives here once for every backend: a backend only declares, through its
metadata, whether it takes uint8 BGR NHWC or normalised float NCHW and whether it returns
logits or a class map.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_LOGITS, ModelMeta
from lgcnet_deploy.export.integrity import IntegrityError
from lgcnet_deploy.runtime.backends.base import Backend, load_backend

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "model" / "weights" / "lgcnet_camvid.pt"


def check_frame(frame: object, index: int | None = None) -> np.ndarray:
    """Validate an OpenCV BGR uint8 HxWx3 frame; raise TypeError/ValueError saying what to do."""
    where = "frame" if index is None else f"frame {index}"
    if frame is None:
        raise TypeError(f"{where} is None (did cv2.imread or VideoCapture.read fail?)")
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"{where} must be a numpy array (OpenCV BGR image), got "
                        f"{type(frame).__name__}")
    if frame.size == 0:
        raise ValueError(f"{where} is empty (shape {frame.shape})")
    if frame.dtype != np.uint8:
        raise TypeError(f"{where} has dtype {frame.dtype}, expected uint8 BGR; for floats in "
                        f"[0, 1] use (frame * 255).clip(0, 255).astype(np.uint8)")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        raise ValueError(f"{where} is single-channel {frame.shape}; convert with "
                         f"cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)")
    if frame.ndim != 3:
        raise ValueError(f"{where} has shape {frame.shape}, expected HxWx3 (BGR)")
    if frame.shape[2] == 4:
        raise ValueError(f"{where} has 4 channels (BGRA/RGBA); convert with "
                         f"cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)")
    if frame.shape[2] != 3:
        raise ValueError(f"{where} has {frame.shape[2]} channels, expected 3 (BGR)")
    return frame


_DONE = object()  # end of the frames, put by the prefetch worker


class _Prefetch:
    """A daemon thread that reads and prepares frames ahead of the consumer, into a bounded
    queue. It never blocks without checking `stop`, so `close()` returns within a poll
    interval (plus the read of one frame in progress), and it closes the frame iterator in
    its own thread (a generator cannot be closed from another thread while it runs)."""

    POLL_S = 0.02
    JOIN_S = 2.0  # a source blocked in a read longer than this is left to its read timeout

    def __init__(self, frames: Iterable[np.ndarray], prepare: Callable[[int, np.ndarray], Any],
                 depth: int) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
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

    def _run(self, frames: Iterable[np.ndarray], prepare: Callable) -> None:
        it = None
        try:
            it = iter(frames)
            for i, frame in enumerate(it):
                if self.stop.is_set() or not self._put(prepare(i, frame)):
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


@dataclass
class Result:
    """One frame's segmentation: `.mask` (uint8 class ids at the frame's size) and timings."""

    frame: np.ndarray
    mask: np.ndarray
    meta: ModelMeta
    speed: dict[str, float] = field(default_factory=dict)  # ms per frame, per stage

    @property
    def names(self) -> tuple[str, ...]:
        return self.meta.classes

    def colorize(self) -> np.ndarray:
        """The class map painted with the model's palette (BGR uint8, HxWx3)."""
        return self.meta.dataset_info.palette_bgr()[self.mask]

    def overlay(self, alpha: float = 0.5) -> np.ndarray:
        """The frame blended with the colorized mask (alpha = weight of the colours)."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        return cv2.addWeighted(self.frame, 1.0 - alpha, self.colorize(), alpha, 0.0)

    def class_fractions(self) -> dict[str, float]:
        """Share of the frame's pixels per class."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.names))
        return {n: float(c) / self.mask.size for n, c in zip(self.names, counts)}


class Segmenter:
    """Semantic segmentation of OpenCV frames with any exported LGCNet model.

    The backend follows the file's suffix (.onnx: ONNX Runtime, .pt: PyTorch, .engine:
    TensorRT); `device` is 'cpu' or 'cuda' (and 'tensorrt' for ONNX Runtime's TRT provider).
    `verify=False` loads an ONNX whose weights no longer match the digest recorded at export
    (for graphs edited on purpose).
    """

    def __init__(self, model: str | Path | Backend = DEFAULT_MODEL, device: str = "cpu",
                 verify: bool = True) -> None:
        self.backend = model if isinstance(model, Backend) else load_backend(model, device,
                                                                             verify)
        self.meta = self.backend.meta
        self.speed: dict[str, float] = {}

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.meta.input_size)

    def predict(self, frames: np.ndarray | Sequence[np.ndarray]) -> Result | list[Result]:
        """Segment one frame (HxWx3 BGR uint8) or a list/batch (NxHxWx3) of them."""
        single = not (isinstance(frames, (list, tuple))
                      or (isinstance(frames, np.ndarray) and frames.ndim == 4))
        batch = [frames] if single else list(frames)
        if not batch:
            raise ValueError("no frames given")
        batch = [check_frame(f, None if single else i) for i, f in enumerate(batch)]
        results = []
        step = self.backend.max_batch or len(batch)
        for i in range(0, len(batch), step):
            results += self._run(batch[i:i + step])
        return results[0] if single else results

    __call__ = predict

    def stream(self, frames: Iterable[np.ndarray], prefetch: int = 2) -> Iterator[Result]:
        """Segment a frame iterable (e.g. a video) in order, pipelined: a worker thread
        decodes and pre-processes frame t+1 while the backend infers frame t (OpenCV and the
        runtimes release the GIL, so the two overlap on separate cores).

        Stopping early (`break`, the generator's `close()`, garbage collection) stops the
        worker at once whatever the queue holds, and closes `frames` (releasing a video or
        camera) if it is a generator or a `FrameSource`.
        """
        def prepare(i: int, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            t0 = time.perf_counter()
            x = self.preprocess([check_frame(frame, i)])
            return frame, x, (time.perf_counter() - t0) * 1e3

        worker = _Prefetch(frames, prepare, prefetch)
        try:
            while (item := worker.get()) is not _DONE:
                frame, x, pre_ms = item
                t1 = time.perf_counter()
                y = self.backend.infer(x)
                t2 = time.perf_counter()
                mask = self.postprocess(y, [frame.shape[:2]])[0]
                t3 = time.perf_counter()
                # preprocess ran on the worker, overlapped with the previous inference
                self.speed = {"preprocess": pre_ms, "inference": (t2 - t1) * 1e3,
                              "postprocess": (t3 - t2) * 1e3}
                yield Result(frame, mask, self.meta, dict(self.speed))
        finally:
            worker.close()

    def _run(self, frames: list[np.ndarray]) -> list[Result]:
        t0 = time.perf_counter()
        x = self.preprocess(frames)
        t1 = time.perf_counter()
        y = self.backend.infer(x)
        t2 = time.perf_counter()
        masks = self.postprocess(y, [f.shape[:2] for f in frames])
        t3 = time.perf_counter()
        n = len(frames)
        self.speed = {"preprocess": (t1 - t0) * 1e3 / n, "inference": (t2 - t1) * 1e3 / n,
                      "postprocess": (t3 - t2) * 1e3 / n}
        return [Result(f, m, self.meta, dict(self.speed)) for f, m in zip(frames, masks)]

    def preprocess(self, frames: list[np.ndarray]) -> np.ndarray:
        """Resize to the model's input size and lay out as the model wants."""
        h, w = self.input_size
        resized = [f if f.shape[:2] == (h, w) else
                   cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames]
        x = np.stack(resized)
        if self.meta.input_format == INPUT_UINT8_NHWC_BGR:
            return x
        mean = np.asarray(self.meta.mean_rgb, np.float32)
        std = np.asarray(self.meta.std_rgb, np.float32)
        rgb = x[..., ::-1].astype(np.float32) * (1.0 / 255.0)
        return np.ascontiguousarray(((rgb - mean) / std).transpose(0, 3, 1, 2))

    def postprocess(self, y: np.ndarray, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        """Class map per frame, resized (nearest) to each frame's own size."""
        labels = y.argmax(1) if self.meta.output_kind == OUTPUT_LOGITS else y
        if labels.size and not 0 <= labels.min() <= labels.max() < self.meta.num_classes:
            raise IntegrityError(
                f"{self.backend.path}: the model output class id {int(labels.max())} but its "
                f"metadata lists {self.meta.num_classes} classes: the metadata belongs to "
                f"another model; re-export it with `lgcnet export`")
        labels = labels.astype(np.uint8)
        return [m if m.shape == size else
                cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
                for m, size in zip(labels, sizes)]

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Segmenter({self.backend!r}, input_size={self.input_size})"
