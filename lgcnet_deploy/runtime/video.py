"""Frame sources (video file, image folder, webcam), an MP4 writer and overlay annotation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from lgcnet_deploy.core.data import read_image
from lgcnet_deploy.core.metadata import ModelMeta

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class SourceError(RuntimeError):
    """A video, folder or camera cannot be read."""


class FrameSource:
    """Iterate BGR frames from a video file, a folder of images (sorted) or a webcam index."""

    def __init__(self, source: str | Path | int, folder_fps: float = 15.0) -> None:
        self.source = source
        self.fps = folder_fps
        if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
            self.kind, self.images = "camera", []
            self._probe_capture(int(source))
            return
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"source not found: {path}")
        if path.is_dir():
            self.kind = "folder"
            self.images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.images:
                raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
        else:
            self.kind, self.images = "video", []
            self._probe_capture(str(path))

    def _probe_capture(self, target: str | int) -> None:
        cap = cv2.VideoCapture(target)
        ok = cap.isOpened() and cap.read()[0]
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        if not ok:
            what = f"camera {target}" if isinstance(target, int) else f"video {target}"
            raise SourceError(f"cannot read {what}: OpenCV could not open or decode it (is it "
                              f"a video file/camera, and is the codec supported?)")
        self.fps = fps if fps and fps > 0 else self.fps

    def __len__(self) -> int:
        if self.kind == "folder":
            return len(self.images)
        if self.kind == "video":
            cap = cv2.VideoCapture(str(self.source))
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            cap.release()
            return n
        raise TypeError("a camera has no length")

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.kind == "folder":
            for p in self.images:
                yield read_image(p)
            return
        target = int(self.source) if self.kind == "camera" else str(self.source)
        cap = cv2.VideoCapture(target)
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame
        finally:
            cap.release()


class Mp4Writer:
    """cv2.VideoWriter ('mp4v') that says so when it cannot write, sized on the first frame."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps, self._writer = Path(path), fps, None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.fps, (w, h))
            if not self._writer.isOpened():
                raise SourceError(f"cannot write {self.path} (mp4v codec unavailable or "
                                  f"folder not writable)")
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def annotate(image: np.ndarray, meta: ModelMeta, fps: float | None = None) -> np.ndarray:
    """Draw the class legend (right edge) and, if given, the FPS (top left) onto a copy."""
    out = image.copy()
    palette = meta.dataset_info.palette_bgr()
    row = max(14, out.shape[0] // (len(meta.classes) + 2))
    x0 = out.shape[1] - 120
    for i, (name, colour) in enumerate(zip(meta.classes, palette)):
        y = 6 + i * row
        cv2.rectangle(out, (x0, y), (x0 + 12, y + row - 4), tuple(int(c) for c in colour), -1)
        cv2.putText(out, name, (x0 + 16, y + row - 6), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, (255, 255, 255), 1, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:5.1f} FPS", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (255, 255, 255), 2, cv2.LINE_AA)
    return out


def segment_video(seg, source: str | Path | int, out: str | Path, alpha: float = 0.5,
                  max_frames: int | None = None) -> Path:
    """Overlay + legend + live FPS for every frame of `source`, written to an MP4."""
    src = FrameSource(source)
    frames = iter(src)
    if max_frames is not None:
        frames = (f for f, _ in zip(frames, range(max_frames)))
    with Mp4Writer(out, src.fps) as writer:
        last = time.perf_counter()
        for r in seg.stream(frames):
            now = time.perf_counter()
            writer.write(annotate(r.overlay(alpha), seg.meta, 1.0 / max(now - last, 1e-6)))
            last = now
    if writer.frames == 0:
        raise SourceError(f"{source}: no frames decoded")
    return Path(out)
