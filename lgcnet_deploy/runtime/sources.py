"""Frame sources: an image, a folder of images, a video file, a webcam or a stream."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from lgcnet_deploy.core.data import read_image
from lgcnet_deploy.core.errors import MissingFileError, WorkFailedError, damaged

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
# OpenCV reads a camera index >= 100 as (backend id + index): 1900 is "FFmpeg, device 0".
CAMERA_INDEX_LIMIT = 100
LIVE_KINDS = ("camera", "stream")
# what a source may be, for messages that refuse one
SOURCE_KINDS = ("an image, a list of image paths, a folder of images, a video file, a camera "
                "index (0, 1, ...) or a stream URL (rtsp://, rtmp://, http(s)://)")


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

    def __init__(self, source: str | Path | int | Sequence[str | Path], folder_fps: float = 15.0,
                 timeout_s: float = 10.0, max_frames: int | None = None) -> None:
        self.source, self.fps, self.timeout_s = source, folder_fps, timeout_s
        self.max_frames, self.frames_read = max_frames, 0
        if isinstance(source, list | tuple):  # a list of image paths, read in its order
            self.kind, self.target, self.images = "images", f"{len(source)} paths", [
                Path(p) for p in source]
            missing = [str(p) for p in self.images if not p.is_file()]
            if missing or not self.images:
                raise FileNotFoundError(f"source not found: {missing[0]}" if missing else
                                        "an empty list of images is no source")
            return
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
        if self.kind in ("image", "folder", "images"):
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
