"""CamVid as torch tensors with the paper's augmentation: flip, random scale, random crop."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from lgcnet_deploy.core.classes import MEAN_RGB, STD_RGB
from lgcnet_deploy.core.data import CamVid

_MEAN = np.asarray(MEAN_RGB, np.float32)
_STD = np.asarray(STD_RGB, np.float32)


def normalize(bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 HxWx3 -> normalised RGB float CxHxW (the same constants as deployment)."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return torch.from_numpy(((rgb - _MEAN) / _STD).transpose(2, 0, 1).copy())


class CamVidTorch(Dataset):
    """(image tensor, long label tensor) pairs; augmentation only when `train`.

    Training: random scale in `scale_range`, random crop of `crop` (H, W) padded with void
    where the scaled image is smaller, horizontal flip. Evaluation: frames as they are.
    """

    def __init__(self, split: str = "train", crop: tuple[int, int] | None = (360, 480),
                 scale_range: tuple[float, float] = (0.5, 2.0), train: bool = True,
                 root: str | None = None, seed: int = 0) -> None:
        self.data = CamVid(split, root)
        self.crop, self.scale_range, self.train = crop, scale_range, train
        self.ignore = self.data.dataset.ignore_index
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, label = self.data[i]
        if self.train:
            img, label = self._augment(img, label)
        return normalize(img), torch.from_numpy(label.astype(np.int64))

    def _augment(self, img: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.rng.integers(1 << 31) + torch.initial_seed() % (1 << 31))
        s = rng.uniform(*self.scale_range)
        h, w = label.shape
        size = (max(1, round(w * s)), max(1, round(h * s)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
        if self.crop is not None:
            ch, cw = self.crop
            ph, pw = max(ch - label.shape[0], 0), max(cw - label.shape[1], 0)
            if ph or pw:
                img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
                label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                           value=self.ignore)
            y = rng.integers(0, label.shape[0] - ch + 1)
            x = rng.integers(0, label.shape[1] - cw + 1)
            img, label = img[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            img, label = img[:, ::-1], label[:, ::-1]
        return np.ascontiguousarray(img), np.ascontiguousarray(label)
