"""How a `Result` is drawn and written (as ultralytics' Annotator): the class legend and
FPS drawn on a frame, images and MP4s that never leave a half-written file under their
final name."""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.runtime.sources import SourceError


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Encode `image` by the suffix of `path` and write it under a temporary name first, so
    `path` is either absent, its previous content or the complete new image."""
    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise SourceError(f"cannot encode an image as {path.suffix!r} for {path}")
    return _write_atomic(path, data.tobytes())


def _write_atomic(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class Mp4Writer:
    """cv2.VideoWriter ('mp4v') sized on the first frame, writing NAME.partial.mp4 and renaming
    it to NAME.mp4 only when closed after a complete run (`with`: when no exception escaped).
    Its folder is created with the first frame."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps, self._writer = Path(path), fps, None
        self.partial = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            h, w = frame.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.fps, (w, h))
            if not self._writer.isOpened():
                raise SourceError(f"cannot write {self.path} (mp4v codec unavailable or "
                                  f"folder not writable)")
        self._writer.write(frame)
        self.frames += 1

    def close(self, complete: bool = True) -> Path | None:
        """Finish the file: renamed to its final name if `complete` and not empty (returns
        the path), else deleted (returns None)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if complete and self.frames:
            os.replace(self.partial, self.path)
            return self.path
        self.partial.unlink(missing_ok=True)
        return None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(complete=exc_type is None)


def legend_box(image_shape: tuple[int, ...], mask: np.ndarray | None, box: tuple[int, int]
               ) -> tuple[int, int]:
    """Top-left corner of a `box` (h, w) legend: the frame corner where the mask is the most
    uniform (sky, road: where the box hides the least), top right without a mask."""
    (h, w), (bh, bw) = image_shape[:2], box
    corners = [(0, w - bw), (0, 0), (h - bh, w - bw), (h - bh, 0)]
    corners = [(max(y, 0), max(x, 0)) for y, x in corners]
    if mask is None:
        return corners[0]

    def uniformity(corner: tuple[int, int]) -> float:
        y, x = corner
        patch = mask[y:y + bh, x:x + bw].ravel()
        return float(np.bincount(patch).max()) / max(patch.size, 1) if patch.size else 0.0

    return max(corners, key=uniformity)  # ties keep the earlier corner


def annotate(image: np.ndarray, meta: ModelMeta, fps: float | None = None,
             mask: np.ndarray | None = None) -> np.ndarray:
    """A copy of `image` with the legend of the classes `mask` holds (all without a mask),
    in the corner where it hides the least, and, if given, the FPS (top left); text is
    scaled to the frame's height. Colours are the overlay's (`Dataset.overlay_bgr`)."""
    out = image.copy()
    scale = max(out.shape[0] / 720, 0.35)
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(scale * 1.5))
    ids = (np.flatnonzero(np.bincount(mask.ravel(), minlength=meta.num_classes))
           if mask is not None else range(meta.num_classes))
    ids = [i for i in ids if i < meta.num_classes]
    row = cv2.getTextSize("Ag", font, scale, thick)[0][1] * 2
    width = max([cv2.getTextSize(meta.classes[i], font, scale, thick)[0][0] for i in ids],
                default=0) + row + 8
    y0, x0 = legend_box(out.shape, mask, (row * len(ids) + 8, width))
    if ids:
        panel = out[y0:y0 + row * len(ids) + 8, x0:x0 + width]
        panel[:] = (panel * 0.45).astype(np.uint8)  # a dark panel keeps white text legible
    colours = meta.dataset_info.overlay_bgr()
    for k, i in enumerate(ids):
        y = y0 + 4 + k * row
        cv2.rectangle(out, (x0 + 4, y + 2), (x0 + row - 2, y + row - 4),
                      tuple(int(c) for c in colours[i]), -1)
        cv2.putText(out, meta.classes[i], (x0 + row + 2, y + row - 6), font, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:5.1f} FPS", (8, int(30 * scale) + 8), font, scale * 1.4,
                    (255, 255, 255), thick + 1, cv2.LINE_AA)
    return out


def write_palette_png(path: str | Path, ids: np.ndarray, palette_rgb: np.ndarray) -> Path:
    """Write a class map as an indexed (palette) PNG: the pixel values stay the class ids
    and every viewer shows the palette's colours. Written complete or not at all."""
    ids = np.ascontiguousarray(ids, dtype=np.uint8)
    h, w = ids.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = np.concatenate([np.zeros((h, 1), np.uint8), ids], axis=1)  # filter 0 per row
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
           + chunk(b"PLTE", np.asarray(palette_rgb, np.uint8).tobytes())
           + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))
    return _write_atomic(Path(path), png)


class FpsMeter:
    """Frames per second over a sliding window of the last `window` frames: what a video
    shows per frame; over a whole run it agrees with frames / elapsed time."""

    def __init__(self, window: int = 30) -> None:
        self.times: deque[float] = deque(maxlen=window + 1)

    def tick(self, now: float) -> float | None:
        """Record a frame shown at `now` (seconds); the smoothed FPS, None on the first."""
        self.times.append(now)
        if len(self.times) < 2:
            return None
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)
