"""Which frames calibrate an INT8 model: a folder of the user's own frames (any layout, any
image format OpenCV reads) or a CamVid root (the shipped list of train frames), counted and
checked before the slow part starts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lgcnet_deploy.core.data import CAMVID_ENV, DatasetNotFoundError, read_image
from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.export.int8 import DEFAULT_LIST, calibration_frames

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MIN_FRAMES = 16  # fewer cover too few scenes for activation ranges to hold on new ones
DEFAULT_FRAMES = 32  # spread over the folder; all of the shipped CamVid list (31)
EXTRACT_HINT = "e.g. from a recording: ffmpeg -i clip.mp4 -vf fps=1 DIR/%04d.png"


class CalibrationError(BadInputError):
    """Calibration frames that cannot calibrate; the message says what to give instead."""


def is_camvid_root(folder: Path) -> bool:
    return (folder / "train" / "images").is_dir()


def spread(paths: Sequence[Path], n: int) -> list[Path]:
    """`n` of `paths` evenly spaced from first to last (all of them if there are fewer)."""
    if n < 1:
        raise CalibrationError(f"--calib-frames must be >= 1, got {n}")
    if len(paths) <= n:
        return list(paths)
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]


def images_in(folder: Path) -> list[Path]:
    """Image files under `folder` (subfolders included, hidden ones not), sorted by path."""
    if not folder.is_dir():
        raise CalibrationError(f"--calib {folder}: not a folder; give a folder of frames from "
                               f"the camera the model will run on ({EXTRACT_HINT})")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                  and p.is_file() and not any(part.startswith(".") for part in
                                              p.relative_to(folder).parts))


def find_frames(folder: Path | None, n: int = DEFAULT_FRAMES,
                list_file: Path | None = None) -> list[Path]:
    """`n` calibration frames spread over `folder`: a CamVid root (or None: $LGCNET_CAMVID)
    gives the frames its shipped list names; any other folder its images, at least
    MIN_FRAMES of them."""
    if folder is None or is_camvid_root(folder):
        try:
            return spread(calibration_frames(list_file or DEFAULT_LIST, folder), n)
        except DatasetNotFoundError as e:  # only without --calib: a CamVid root has train/
            env = os.environ.get(CAMVID_ENV)
            raise CalibrationError(
                f"no calibration frames: pass --calib DIR, a folder of frames from your camera "
                f"or the CamVid root (${CAMVID_ENV} "
                + (f"is {env}, with no train/images)" if env else "is not set)")) from e
    found = images_in(folder)
    if len(found) < MIN_FRAMES:
        raise CalibrationError(
            f"--calib {folder}: {len(found)} image(s) ({', '.join(IMAGE_SUFFIXES)}), "
            f"calibration needs at least {MIN_FRAMES}: add frames from the scenes and light "
            f"the model will see ({EXTRACT_HINT})")
    return spread(found, n)


def check_resolution(paths: Sequence[Path], input_size: tuple[int, int]) -> None:
    """Every frame decodes and is at least half the model's input on each side: smaller ones
    are previews or thumbnails, and upscaled they calibrate on what no camera sends."""
    h, w = input_size
    for path in paths:
        try:
            fh, fw = read_image(path).shape[:2]
        except ValueError as e:
            raise CalibrationError(f"{e}; remove it from the calibration folder") from e
        if 2 * fh < h or 2 * fw < w:
            raise CalibrationError(
                f"{path} is {fh}x{fw}, under half the model's {h}x{w} input: calibrate on "
                f"full-size camera frames, or export the model for this size (`lgcnet export "
                f"MODEL -o x.onnx --imgsz {fh}x{fw}`)")
