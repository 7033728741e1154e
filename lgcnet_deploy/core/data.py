"""CamVid on disk (`{root}/{split}/{images,labels}`), image reading, and where caches go."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from lgcnet_deploy.core.classes import CAMVID, Dataset
from lgcnet_deploy.core.errors import BadInputError, MissingFileError, damaged

CAMVID_ENV = "LGCNET_CAMVID"
POINT_AT_CAMVID = f"pass --data DIR (the folder with train/ and val/) or set {CAMVID_ENV}=DIR"


class DatasetNotFoundError(BadInputError, FileNotFoundError):
    """CamVid is not where it was looked for; the message says how to point at it."""


def camvid_root(root: str | Path | None = None) -> Path:
    """Where CamVid lives: `root` (a --data flag) if given, else $LGCNET_CAMVID; neither set
    is a DatasetNotFoundError saying so. Does not check that it exists (see `require_camvid`)."""
    if root is not None:
        return Path(root)
    if os.environ.get(CAMVID_ENV):
        return Path(os.environ[CAMVID_ENV])
    raise DatasetNotFoundError(f"CamVid's location is not set: {POINT_AT_CAMVID}")


def require_camvid(root: str | Path | None = None, split: str = "val") -> Path:
    """The CamVid root holding `split`, or DatasetNotFoundError saying how to point at it."""
    path = camvid_root(root)
    if not (path / split / "images").is_dir():
        raise DatasetNotFoundError(f"CamVid {split} split not found under {path}: "
                                   f"{POINT_AT_CAMVID}")
    return path


def cache_root() -> Path:
    """Where caches go (calibration ranges): $LGCNET_CACHE, else ~/.cache/lgcnet."""
    base = os.environ.get("LGCNET_CACHE") or Path(os.environ.get(
        "XDG_CACHE_HOME", Path.home() / ".cache")) / "lgcnet"
    return Path(base)


def read_image(path: str | Path) -> np.ndarray:
    """Read a BGR uint8 image, raising FileNotFoundError/ValueError instead of returning None."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"image not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise damaged(path, "image", "OpenCV cannot decode it")
    return img


def read_label(path: str | Path) -> np.ndarray:
    """Read a label map (uint8 HxW class ids) as it is on disk."""
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise MissingFileError(f"label missing or unreadable: {path}")
    return label


class CamVid:
    """One split of CamVid: `len()`, indexing returns (BGR uint8 HxWx3, uint8 HxW label)."""

    dataset: Dataset = CAMVID

    def __init__(self, split: str = "train", root: str | Path | None = None) -> None:
        self.root = require_camvid(root, split)
        self.split = split
        img_dir = self.root / split / "images"
        self.images = sorted(img_dir.glob("*.jpg"))
        if not self.images:
            raise MissingFileError(f"no .jpg frames in {img_dir}")
        self.labels = [self.root / split / "labels" / f"{p.stem}.png" for p in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return read_image(self.images[i]), read_label(self.labels[i])

    @classmethod
    def available(cls, root: str | Path | None = None) -> bool:
        try:
            return (camvid_root(root) / "val" / "images").is_dir()
        except DatasetNotFoundError:
            return False
