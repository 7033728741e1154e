"""CamVid on disk (`{root}/{split}/{images,labels}`), image reading, and where caches go."""

from __future__ import annotations

import os
import struct
import zlib
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
    """Read a label map or a saved class map (uint8 HxW class ids) as it is on disk: a
    grayscale PNG, or an indexed (palette) PNG as `Result.save` writes, whose indices are the
    ids (OpenCV would expand its palette to colours)."""
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 and data[25] == 3:
        return _palette_png_indices(path, data)
    label = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if label is None:
        raise MissingFileError(f"label missing or unreadable: {path}")
    return label


def _palette_png_indices(path: str | Path, data: bytes) -> np.ndarray:
    """The 8-bit indices of a non-interlaced palette PNG (every PNG row filter undone)."""
    width, height, depth, _, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 8 or interlace:
        raise damaged(path, "class map", f"an indexed PNG of {depth}-bit indices"
                      f"{', interlaced' if interlace else ''}: save it with 8-bit indices")
    pos, idat = 8, b""
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        idat += data[pos + 8:pos + 8 + size] if kind == b"IDAT" else b""
        pos += 12 + size
    try:
        raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width + 1)
    except (zlib.error, ValueError) as e:
        raise damaged(path, "class map", e) from e
    out = np.zeros((height, width), np.int32)
    for y in range(height):
        out[y] = _unfilter(raw[y, 0], raw[y, 1:].astype(np.int32),
                           out[y - 1] if y else np.zeros(width, np.int32))
    return out.astype(np.uint8)


def _unfilter(kind: int, row: np.ndarray, up: np.ndarray) -> np.ndarray:
    """One PNG scanline's filter undone (1 byte per pixel): None, Sub, Up, Average, Paeth."""
    if kind == 0:
        return row
    if kind == 2:
        return (row + up) % 256
    out = row.copy()
    for x in range(len(row)):
        left = out[x - 1] if x else 0
        if kind == 1:
            out[x] = (row[x] + left) % 256
        elif kind == 3:
            out[x] = (row[x] + (left + up[x]) // 2) % 256
        else:
            corner = up[x - 1] if x else 0
            p = left + up[x] - corner
            pa, pb, pc = abs(p - left), abs(p - up[x]), abs(p - corner)
            pred = left if pa <= pb and pa <= pc else (up[x] if pb <= pc else corner)
            out[x] = (row[x] + pred) % 256
    return out


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
