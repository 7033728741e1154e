"""Frame sources (image, image folder, video file, webcam, stream), writers that never leave a
half-written file under its final name, and overlay annotation."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
from tqdm import tqdm

from lgcnet_deploy.core.data import read_image
from lgcnet_deploy.core.errors import MissingFileError, WorkFailedError, damaged
from lgcnet_deploy.core.metadata import ModelMeta

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
# OpenCV reads a camera index >= 100 as (backend id + index): 1900 is "FFmpeg, device 0".
CAMERA_INDEX_LIMIT = 100
LIVE_KINDS = ("camera", "stream")
# what a source may be, for messages that refuse one
SOURCE_KINDS = ("an image, a folder of images, a video file, a camera index (0, 1, ...) or a "
                "stream URL (rtsp://, rtmp://, http(s)://)")


class SourceError(WorkFailedError):
    """A video, folder, camera or stream cannot be read."""


def source_kind(source: str | Path | int) -> str:
    """'camera' (an index), 'stream' (an RTSP/RTMP/HTTP URL), 'folder', 'image' (by suffix)
    or 'video'."""
    if isinstance(source, int) or (isinstance(source, str) and source.lstrip("-").isdigit()):
        return "camera"
    text = str(source)
    if urlsplit(text).scheme.lower() in STREAM_SCHEMES and "://" in text:
        return "stream"
    if Path(text).is_dir():
        return "folder"
    return "image" if Path(text).suffix.lower() in IMAGE_SUFFIXES else "video"


def redact(url: str) -> str:
    """A stream URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs failed opens to stderr; our exceptions say it in one line instead."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _camera_index(source: str | int) -> int:
    index = int(source)
    if not 0 <= index < CAMERA_INDEX_LIMIT:
        raise SourceError(f"camera index {index} is out of range: use 0-{CAMERA_INDEX_LIMIT - 1} "
                          f"(OpenCV reads other numbers as backend codes)")
    # On Linux a missing device is known without OpenCV, whose probing of absent devices is
    # where crashes have been seen.
    devices = sorted(Path("/dev").glob("video[0-9]*")) if sys.platform == "linux" else None
    if devices is not None and Path(f"/dev/video{index}") not in devices:
        found = ", ".join(str(d) for d in devices) or "none"
        raise SourceError(f"camera {index}: no such device (/dev/video{index}); cameras here: "
                          f"{found}")
    return index


class FrameSource:
    """Iterate BGR frames from an image, a folder of images (sorted), a video file, a webcam
    index or an RTSP/RTMP/HTTP stream. Opening probes the source (one frame) so a bad one fails here
    with SourceError; a live source that stops mid-run just ends the iteration, with
    `frames_read` telling how far it got. `timeout_s` bounds a stream's open and each read.
    """

    def __init__(self, source: str | Path | int, folder_fps: float = 15.0,
                 timeout_s: float = 10.0, max_frames: int | None = None) -> None:
        self.source, self.fps, self.timeout_s = source, folder_fps, timeout_s
        self.max_frames, self.frames_read = max_frames, 0
        self.kind, self.images = source_kind(source), []
        if self.kind == "camera":
            self.target: str | int = _camera_index(source)
        elif self.kind == "stream":
            self.target = str(source)
        else:
            path = Path(source)
            if not path.exists():
                raise MissingFileError(f"source not found: {path} (a source is {SOURCE_KINDS})")
            self.target = str(path)
            if self.kind == "image":
                self.images = [path]
                return
            if self.kind == "folder":
                self.images = sorted(p for p in path.iterdir()
                                     if p.suffix.lower() in IMAGE_SUFFIXES)
                if not self.images:
                    raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in "
                                      f"{path}")
                return
        cap = self._open()
        ok = cap.read()[0]
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        if not ok:
            self._unreadable("opened, but no frame could be decoded")
        self.fps = fps if fps and 0 < fps < 1000 else self.fps

    @property
    def live(self) -> bool:
        """A camera or a stream: no length, and its end (or a drop) is not an error."""
        return self.kind in LIVE_KINDS

    def __str__(self) -> str:
        if self.kind == "stream":
            return f"stream {redact(self.target)}"
        return f"{self.kind} {self.target}"

    def _open(self) -> cv2.VideoCapture:
        with _quiet_opencv():
            try:
                if self.kind == "stream":
                    ms = int(self.timeout_s * 1000)
                    cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG,
                                           [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                            cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
                else:
                    cap = cv2.VideoCapture(self.target)
            except cv2.error as e:
                self._unreadable(e)
        if not cap.isOpened():
            cap.release()
            self._unreadable("OpenCV could not open it")
        return cap

    def _unreadable(self, why: object) -> NoReturn:
        """A video file that cannot be decoded is a bad input (damaged, truncated or not a
        video); a camera or a stream that does not answer is a failure of the source."""
        if self.kind == "video":
            raise damaged(self.target, "video", str(why))
        hint = {"camera": "is it connected and not in use by another program?",
                "stream": f"no connection or no video within {self.timeout_s:g} s; check "
                          f"the address and that the stream is up"}[self.kind]
        raise SourceError(f"cannot read {self}: {why} ({hint})")

    def __len__(self) -> int:
        if self.kind in ("image", "folder"):
            n = len(self.images)
        elif self.kind == "video":
            cap = self._open()
            n = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))  # a damaged header: -1
            cap.release()
        else:
            raise TypeError(f"a {self.kind} has no length")
        return n if self.max_frames is None else min(n, self.max_frames)

    def __iter__(self) -> Iterator[np.ndarray]:
        self.frames_read = 0
        if self.images:
            for p in itertools.islice(self.images, self.max_frames):
                yield read_image(p)
                self.frames_read += 1
            return
        cap = self._open()
        try:
            while self.max_frames is None or self.frames_read < self.max_frames:
                try:
                    ok, frame = cap.read()
                except cv2.error as e:
                    if self.live:  # a dropped stream ends the run; frames_read says where
                        return
                    self._unreadable(f"after frame {self.frames_read}: {e}")
                if not ok:
                    return
                self.frames_read += 1
                yield frame
        finally:
            cap.release()


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


@dataclass
class VideoRun:
    """What `segment_video` wrote: the MP4 (None when no frame came), the frame count, and
    whether a live source was stopped by Ctrl-C (its recording is kept) or ended by itself."""

    path: Path | None
    frames: int
    source: str
    interrupted: bool = False


def segment_video(seg, source: str | Path | int | FrameSource, out: str | Path,
                  alpha: float = 0.5, max_frames: int | None = None,
                  progress: bool = False) -> VideoRun:
    """Overlay + legend + live FPS for every frame of `source`, written to an MP4.

    A file or folder that fails midway leaves no MP4 at `out`. A camera or stream runs until
    it ends or drops, or until Ctrl-C, which for a live source means "stop recording": the
    frames so far are kept and the run returns normally.
    """
    src = source if isinstance(source, FrameSource) else FrameSource(source)
    src.max_frames = max_frames if max_frames is not None else src.max_frames
    total = None if src.live else len(src)
    interrupted = False
    with Mp4Writer(out, src.fps) as writer, tqdm(total=total, unit="frame", desc=str(src),
                                                 disable=not progress, leave=False) as bar:
        last = time.perf_counter()
        try:
            for r in seg.stream(src):
                now = time.perf_counter()
                writer.write(annotate(r.overlay(alpha), seg.meta, 1.0 / max(now - last, 1e-6)))
                last = now
                bar.update()
        except KeyboardInterrupt:
            if not src.live:
                raise
            interrupted = True
    if writer.frames == 0:
        raise SourceError(f"{src}: no frames decoded")
    return VideoRun(writer.path, writer.frames, str(src), interrupted)
