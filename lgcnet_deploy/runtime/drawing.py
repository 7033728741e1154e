"""How a `Result` is drawn and written (as ultralytics' Annotator): the class legend and
FPS drawn on a frame, images and MP4s that never leave a half-written file under their
final name."""

from __future__ import annotations

import os
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(data.tobytes())
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
