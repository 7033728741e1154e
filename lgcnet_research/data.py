"""CamVid as torch tensors with the paper's augmentation: flip, random scale, random crop.

`CamVidTorch` decodes and augments frame by frame on the CPU (for a DataLoader);
`DeviceCamVid` + `DeviceBatches` hold a split on the training device and augment whole
batches there (`TrainConfig.device_data`: on a GPU the CPU never touches a frame after loading).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F
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


# -- the same recipe as tensors on the training device (GPU: no decode or resize on the CPU) ----
@functools.cache
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Made once per device: a fresh host-to-GPU copy would wait for the GPU every batch."""
    return (torch.tensor(MEAN_RGB, device=device).view(1, 3, 1, 1),
            torch.tensor(STD_RGB, device=device).view(1, 3, 1, 1))


def normalize_batch(bgr: torch.Tensor) -> torch.Tensor:
    """BGR NCHW float in 0-255 -> normalised RGB NCHW, as `normalize` does for one frame."""
    mean, std = _mean_std(bgr.device)
    return (bgr.flip(1) / 255.0 - mean) / std


def augment_batch(images: torch.Tensor, labels: torch.Tensor, crop: tuple[int, int],
                  scale_range: tuple[float, float], ignore: int,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CamVidTorch's augmentation for a batch, on the batch's device, by one `grid_sample`.

    Per frame: scale s ~ U(scale_range) (sizes rounded as cv2.resize gets them), a random
    `crop` (H, W) of the scaled frame padded bottom/right with black and void where it is
    smaller, then a horizontal flip with p = 0.5. Images are sampled bilinearly at cv2's pixel
    centres, labels by nearest neighbour. `images` (N, H, W, 3) BGR uint8, `labels` (N, H, W);
    returns normalised RGB NCHW float and int64 labels.
    """
    n, h, w = labels.shape
    dev, (ch, cw) = labels.device, crop
    r = torch.rand(n, 4, generator=generator, device=dev)
    s = scale_range[0] + r[:, 0] * (scale_range[1] - scale_range[0])
    hs, ws = (h * s).round().clamp(min=1), (w * s).round().clamp(min=1)
    y0 = (r[:, 1] * ((hs - ch).clamp(min=0) + 1)).floor()
    x0 = (r[:, 2] * ((ws - cw).clamp(min=0) + 1)).floor()
    cols = torch.arange(cw, device=dev, dtype=torch.float32)
    cols = torch.where((r[:, 3] < 0.5)[:, None], cw - 1 - cols, cols)  # flip after the crop
    ys = y0[:, None] + torch.arange(ch, device=dev, dtype=torch.float32)  # in the scaled frame
    xs = x0[:, None] + cols
    inside = (ys < hs[:, None])[:, :, None] & (xs < ws[:, None])[:, None, :]
    # a scaled pixel centre y+0.5 is source y' = (y+0.5)·h/hs, i.e. 2(y+0.5)/hs - 1 in [-1, 1]
    gy, gx = 2 * (ys + 0.5) / hs[:, None] - 1, 2 * (xs + 0.5) / ws[:, None] - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    img = F.grid_sample(images.permute(0, 3, 1, 2).float(), grid, mode="bilinear",
                        padding_mode="border", align_corners=False)
    lab = F.grid_sample(labels[:, None].float(), grid, mode="nearest", padding_mode="border",
                        align_corners=False)[:, 0]
    img = img * inside[:, None]  # black padding, as cv2.copyMakeBorder(value=0) before normalize
    return normalize_batch(img), torch.where(inside, lab.long(), ignore)


class DeviceCamVid:
    """One CamVid split held as uint8 tensors on `device`: `images` (N, H, W, 3) BGR and
    `labels` (N, H, W); all frames must share one size (CamVid's are 360x480)."""

    def __init__(self, split: str, device: torch.device | str, root: str | None = None,
                 limit: int | None = None) -> None:
        data = CamVid(split, root)
        n = min(len(data), limit) if limit else len(data)
        with ThreadPoolExecutor(max_workers=8) as pool:  # cv2 decodes outside the GIL
            frames = list(pool.map(data.__getitem__, range(n)))
        sizes = sorted({label.shape for _, label in frames})
        if len(sizes) != 1:
            raise ValueError(f"CamVid {split}: frames of several sizes {sizes}; device_data "
                             f"needs one size (train with device_data off)")
        self.images = torch.from_numpy(np.stack([img for img, _ in frames])).to(device)
        self.labels = torch.from_numpy(np.stack([label for _, label in frames])).to(device)
        self.ignore = data.dataset.ignore_index

    def __len__(self) -> int:
        return len(self.labels)


class DeviceBatches:
    """Batches of a DeviceCamVid, made on its device: augmented with `augment_batch` when
    `crop` is given, else the frames as they are. Like a DataLoader with a DistributedSampler:
    `set_epoch` reshuffles (the same order on every rank), and rank r takes every
    `world_size`-th frame; with `drop_last` every rank yields the same number of batches."""

    def __init__(self, data: DeviceCamVid, batch: int, crop: tuple[int, int] | None = None,
                 scale_range: tuple[float, float] = (0.5, 2.0), shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        self.data, self.batch, self.crop, self.scale_range = data, batch, crop, scale_range
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        n = len(self.data)
        order = (torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
                 if self.shuffle else torch.arange(n))
        mine = order[self.rank::self.world_size]
        return mine[:n // self.world_size] if self.drop_last else mine

    def __len__(self) -> int:
        n = len(self._indices())
        return n // self.batch if self.drop_last else math.ceil(n / self.batch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.data.labels.device
        idx = self._indices().to(device)
        gen = torch.Generator(device=device)
        gen.manual_seed((self.seed * 1_000_003 + self.epoch) * 64 + self.rank)
        for b in range(len(self)):
            sel = idx[b * self.batch:(b + 1) * self.batch]
            images, labels = self.data.images[sel], self.data.labels[sel]
            if self.crop is None:
                yield normalize_batch(images.permute(0, 3, 1, 2).float()), labels.long()
            else:
                yield augment_batch(images, labels, self.crop, self.scale_range,
                                    self.data.ignore, gen)
