"""CamVid reader for the `../shared/data/camvid/{split}/{images,labels}` layout."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from lgcnet_deploy.core.classes import CAMVID, Dataset

# Repository root's sibling `shared/`, as on developers' machines and CI; override with
# LGCNET_CAMVID=/path/to/camvid.
_REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CAMVID_ROOT = _REPO_ROOT.parent / "shared" / "data" / "camvid"


def camvid_root() -> Path:
    """Where CamVid lives: $LGCNET_CAMVID, else ../shared/data/camvid beside the repository."""
    return Path(os.environ.get("LGCNET_CAMVID", DEFAULT_CAMVID_ROOT))


def read_image(path: str | Path) -> np.ndarray:
    """Read a BGR uint8 image, raising FileNotFoundError/ValueError instead of returning None."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: OpenCV cannot decode this file as an image")
    return img


class CamVid:
    """One split of CamVid: `len()`, indexing returns (BGR uint8 HxWx3, uint8 HxW label)."""

    dataset: Dataset = CAMVID

    def __init__(self, split: str = "train", root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else camvid_root()
        self.split = split
        img_dir = self.root / split / "images"
        if not img_dir.is_dir():
            raise FileNotFoundError(
                f"CamVid split {split!r} not found under {self.root} (expected "
                f"{img_dir}); set LGCNET_CAMVID or pass root=")
        self.images = sorted(img_dir.glob("*.jpg"))
        if not self.images:
            raise FileNotFoundError(f"no .jpg frames in {img_dir}")
        self.labels = [self.root / split / "labels" / f"{p.stem}.png" for p in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        label = cv2.imread(str(self.labels[i]), cv2.IMREAD_UNCHANGED)
        if label is None:
            raise FileNotFoundError(f"label missing or unreadable: {self.labels[i]}")
        return read_image(self.images[i]), label

    @classmethod
    def available(cls, root: str | Path | None = None) -> bool:
        return ((Path(root) if root is not None else camvid_root()) / "val" / "images").is_dir()
