"""CamVid as torch tensors with the paper's augmentation (flip, random scale, random crop)
and, optionally, photometric augmentation (`photometric_batch`: brightness, contrast,
saturation, hue, gamma, blur, noise: the held-out drives include a dusk drive).

`CamVidTorch` decodes and augments frame by frame on the CPU (for a DataLoader);
`DeviceCamVid` + `DeviceBatches` hold a split on the training device and augment whole
batches there (`TrainConfig.device_data`: on a GPU the CPU never touches a frame after loading).
A split is a CamVid folder name ("train", "val") or a `folds.Frames` list. Every random draw
is a function of (seed, epoch, frame), so a resumed run sees exactly the batches an unbroken
run would have.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from lgcnet_deploy.core.classes import MEAN_RGB, STD_RGB
from lgcnet_deploy.core.data import CamVid
from lgcnet_deploy.core.exposure import normalise_exposure
from lgcnet_research.train.folds import Frames

_MEAN = np.asarray(MEAN_RGB, np.float32)
_STD = np.asarray(STD_RGB, np.float32)


def normalize(bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 HxWx3 -> normalised RGB float CxHxW (the same constants as deployment)."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return torch.from_numpy(((rgb - _MEAN) / _STD).transpose(2, 0, 1).copy())


def frames_of(split: str | Frames, root: str | None = None) -> CamVid | Frames:
    """A CamVid folder split by name, or a fold's `Frames` as they are."""
    return split if isinstance(split, Frames) else CamVid(split, root)


def photometric_batch(bgr: torch.Tensor, generator: torch.Generator | None = None,
                      p: float = 0.5) -> torch.Tensor:
    """Random photometric changes per frame of a BGR NCHW float batch in 0-255, each with
    probability `p` (blur and noise with p/2): brightness x U(0.7, 1.3), contrast and
    saturation x U(0.7, 1.3), hue rotated by up to ±18° (YIQ), gamma exp(U(-0.4, 0.4)),
    Gaussian blur σ U(0.3, 1.5), Gaussian noise σ U(2, 8). Geometry and labels are untouched."""
    n, dev = bgr.shape[0], bgr.device
    r = torch.rand(n, 14, generator=generator, device=dev)
    on = r[:, :7] < torch.tensor([p] * 5 + [p / 2] * 2, device=dev)
    amount = r[:, 7:]

    def per_frame(enabled: torch.Tensor, value: torch.Tensor, off: float) -> torch.Tensor:
        return torch.where(enabled, value, torch.full_like(value, off)).view(n, 1, 1, 1)

    x = bgr * per_frame(on[:, 0], 0.7 + 0.6 * amount[:, 0], 1.0)
    gray = (x * torch.tensor([0.114, 0.587, 0.299], device=dev).view(1, 3, 1, 1)).sum(1, True)
    mean = gray.mean((2, 3), keepdim=True)
    x = mean + (x - mean) * per_frame(on[:, 1], 0.7 + 0.6 * amount[:, 1], 1.0)
    x = gray + (x - gray) * per_frame(on[:, 2], 0.7 + 0.6 * amount[:, 2], 1.0)
    x = _rotate_hue(x, per_frame(on[:, 3], (amount[:, 3] - 0.5) * 0.2 * math.pi, 0.0).view(n))
    gamma = per_frame(on[:, 4], torch.exp(0.8 * amount[:, 4] - 0.4), 1.0)
    x = 255.0 * (x.clamp(0, 255) / 255.0) ** gamma
    if on[:, 5].any():  # σ = 0 blurs to the frame itself bit for bit: skip it when no frame blurs
        x = _blur(x, per_frame(on[:, 5], 0.3 + 1.2 * amount[:, 5], 0.0).view(n))
    noise = torch.randn(x.shape, generator=generator, device=dev)
    x = x + noise * per_frame(on[:, 6], 2.0 + 6.0 * amount[:, 6], 0.0)
    return x.clamp(0, 255)


def _rotate_hue(bgr: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each frame's chroma by `angle` radians in YIQ space."""
    rgb_to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                               [0.211, -0.523, 0.312]], device=bgr.device)
    yiq_to_rgb = torch.linalg.inv(rgb_to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(len(angle), 3, 3, device=bgr.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    mix = yiq_to_rgb @ rot @ rgb_to_yiq  # (N, 3, 3) acting on RGB
    rgb = torch.einsum("nij,njhw->nihw", mix, bgr.flip(1))
    return rgb.flip(1)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur (5x5, separable) with a σ per frame; σ = 0 leaves a frame as it is."""
    n, c = x.shape[:2]
    taps = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N*C, 5)
    y = x.reshape(1, n * c, *x.shape[2:])
    y = F.conv2d(F.pad(y, (2, 2, 0, 0), mode="replicate"), kernel[:, None, None, :],
                 groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="replicate"), kernel[:, None, :, None],
                 groups=n * c)
    return y.reshape(x.shape)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to `size` (H, W), centre-aligned as cv2's
    INTER_LINEAR resizes the image: output pixel y reads source floor((y + 0.5)·h/H), the
    sampling `augment_batch` does on the device. (cv2's INTER_NEAREST reads floor(y·h/H),
    which shifts labels up-left of their image by up to half a source pixel.)"""
    h, w = label.shape
    return label[source_index(np.arange(size[0]), h, size[0])[:, None],
                 source_index(np.arange(size[1]), w, size[1])[None, :]]


def source_index(dst: Any, src_size: Any, dst_size: Any) -> Any:
    """The source pixel whose area holds output pixel `dst`'s centre, floor((dst + 0.5)·
    src/dst), in integer arithmetic (numpy or torch alike): no rounding tie can differ between
    the CPU and device paths."""
    return (2 * dst + 1) * src_size // (2 * dst_size)


class CamVidTorch(Dataset):
    """(image tensor, long label tensor) pairs; augmentation only when `train`.

    Training: random scale in `scale_range`, random crop of `crop` (H, W) padded with void
    where the scaled image is smaller, horizontal flip, and `photometric_batch` when
    `photometric`. With `rare_crop` set (a `RareCrop`), that share of the crops is placed on a
    pixel of a class drawn by its rarity (`rare_pixel`). Evaluation: frames as they are. With
    `exposure_target`, every frame is first brightened as the deployed model's are
    (`core.exposure`). The draws for frame i in epoch e depend on (seed, e, i) only: call
    `set_epoch` before each epoch.
    """

    def __init__(self, split: str | Frames = "train", crop: tuple[int, int] | None = (360, 480),
                 scale_range: tuple[float, float] = (0.5, 2.0), train: bool = True,
                 root: str | None = None, seed: int = 0, photometric: bool = False,
                 targets: Sequence[torch.Tensor] | None = None,
                 exposure_target: float | None = None) -> None:
        self.data = frames_of(split, root)
        self.crop, self.scale_range, self.train = crop, scale_range, train
        self.photometric, self.targets = photometric, targets
        self.exposure_target = exposure_target
        self.ignore = self.data.dataset.ignore_index
        self.seed, self.epoch = seed, 0
        self.rare_crop: RareCrop | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        """(image, label), and with `targets` (a teacher's logits per frame, in frame order)
        the teacher's logits warped to the same view."""
        img, label = self.data[i]
        img = normalise_exposure(img, self.exposure_target)
        if not self.train:
            return normalize(img), torch.from_numpy(label.astype(np.int64))
        rng = np.random.default_rng([self.seed, self.epoch, i])
        img, label, view = self._augment(img, label, rng)
        x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32))[None]
        if self.photometric:
            gen = torch.Generator().manual_seed(int(rng.integers(1 << 62)))
            x = photometric_batch(x, gen)
        sample = (normalize_batch(x)[0], torch.from_numpy(label.astype(np.int64)))
        if self.targets is None:
            return sample
        return (*sample, warp_targets(self.targets[i][None], _view_grid(view, label.shape))[0])

    def _augment(self, img: np.ndarray, label: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, bool, tuple[int, int]]]:
        """The augmented frame and label, and the view: crop corner (y, x) in the scaled
        frame, whether it was mirrored, the scaled size (W, H) (`_view_grid` for targets)."""
        s = rng.uniform(*self.scale_range)
        h, w = label.shape
        size = (max(1, round(w * s)), max(1, round(h * s)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        label = resize_label(label, size[::-1])
        y = x = 0
        if self.crop is not None:
            ch, cw = self.crop
            ph, pw = max(ch - label.shape[0], 0), max(cw - label.shape[1], 0)
            if ph or pw:
                img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
                label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                           value=self.ignore)
            y, x = self._crop_corner(label, rng)
            img, label = img[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
        flipped = bool(rng.random() < 0.5)
        if flipped:
            img, label = img[:, ::-1], label[:, ::-1]
        return np.ascontiguousarray(img), np.ascontiguousarray(label), (y, x, flipped, size)

    def _crop_corner(self, label: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
        """The corner (y, x) of a `crop` of `label` (scaled, padded to at least the crop):
        uniform, or with `rare_crop` by its chance one that puts a `rare_pixel` at a uniform
        place in the crop. (No extra draw without `rare_crop`: runs without it keep their
        crops.)"""
        ch, cw = self.crop
        free_y, free_x = label.shape[0] - ch, label.shape[1] - cw
        rare = self.rare_crop
        if rare is not None and rng.random() < rare.chance:
            pixel = rare_pixel(label, rare.share, self.ignore, rng)
            if pixel is not None:
                y = np.clip(pixel[0] - rng.integers(0, ch), 0, free_y)
                x = np.clip(pixel[1] - rng.integers(0, cw), 0, free_x)
                return int(y), int(x)
        return int(rng.integers(0, free_y + 1)), int(rng.integers(0, free_x + 1))


@dataclasses.dataclass(frozen=True)
class RareCrop:
    """Crops placed on rare classes (`TrainConfig.rare_crop`): `chance` of a crop being
    placed, `share` each class's share of the training frames' labelled pixels
    (`folds.class_frequencies`), which sets how often a class is drawn (∝ 1/share)."""

    chance: float
    share: np.ndarray

    def __post_init__(self) -> None:
        if not 0.0 <= self.chance <= 1.0:
            raise ValueError(f"rare_crop is a chance in 0..1, got {self.chance}")


def rare_pixel(label: np.ndarray, share: np.ndarray, ignore: int,
               rng: np.random.Generator) -> tuple[int, int] | None:
    """A pixel (y, x) of a class of `label` drawn with weight 1/share among the classes it
    holds, then uniformly among that class's pixels; None for a frame with no labelled
    pixel. A pole (0.9 % of CamVid's labelled pixels) is drawn ~35× as often as the road (31 %)."""
    k = len(share)
    counts = np.bincount(label[label != ignore].ravel(), minlength=k)[:k]
    present = np.flatnonzero(counts)
    if not present.size:
        return None
    weight = 1.0 / np.maximum(share[present], 1e-6)  # a class the shares never saw: rarest
    cls = rng.choice(present, p=weight / weight.sum())
    ys, xs = np.nonzero(label == cls)
    pick = rng.integers(len(ys))
    return int(ys[pick]), int(xs[pick])


def _view_grid(view: tuple[int, int, bool, tuple[int, int]],
               crop_hw: tuple[int, ...]) -> torch.Tensor:
    """The `crop_grid` of one CPU-augmented view (what `CamVidTorch._augment` returns)."""
    y, x, flipped, (ws, hs) = view
    cols = torch.arange(crop_hw[1], dtype=torch.float32)
    cols = cols.flip(0) if flipped else cols
    rows = torch.arange(crop_hw[0], dtype=torch.float32)
    return crop_grid(y + rows[None], x + cols[None], torch.tensor([float(hs)]),
                     torch.tensor([float(ws)]))


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


def crop_grid(ys: torch.Tensor, xs: torch.Tensor, hs: torch.Tensor,
              ws: torch.Tensor) -> torch.Tensor:
    """The `grid_sample` grid (N, H, W, 2) that reads, for every crop pixel, the point of the
    whole frame it shows: rows `ys` (N, H) and columns `xs` (N, W) of a frame scaled to
    (hs, ws) (N,). A scaled pixel centre y + 0.5 is source (y + 0.5)·h/hs, i.e.
    2(y + 0.5)/hs - 1 in [-1, 1], whatever the resolution of what is sampled (a frame, or a
    teacher's targets cached at a fraction of it)."""
    gy, gx = 2 * (ys + 0.5) / hs[:, None] - 1, 2 * (xs + 0.5) / ws[:, None] - 1
    return torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)


def warp_targets(targets: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """A teacher's cached logits (N, C, h, w) over whole frames, seen through the crops'
    `crop_grid`: what the teacher says of every pixel the student sees."""
    return F.grid_sample(targets.float(), grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def augment_batch(images: torch.Tensor, labels: torch.Tensor, crop: tuple[int, int],
                  scale_range: tuple[float, float], ignore: int,
                  generator: torch.Generator | None = None, photometric: bool = False,
                  targets: torch.Tensor | None = None,
                  rare_crop: RareCrop | None = None) -> tuple[torch.Tensor, ...]:
    """CamVidTorch's augmentation for a batch, on the batch's device.

    Per frame: scale s ~ U(scale_range) (sizes rounded as cv2.resize gets them), a random
    `crop` (H, W) of the scaled frame padded bottom/right with black and void where it is
    smaller, then a horizontal flip with p = 0.5. Images are sampled bilinearly at cv2's pixel
    centres (`crop_grid`), labels at `source_index` (as `resize_label` picks them on the
    CPU); then `photometric_batch` when `photometric`. With `rare_crop`, crops are placed
    on rare classes as `CamVidTorch` places them (`_rare_corners`).
    `images` (N, H, W, 3) BGR uint8, `labels` (N, H, W); returns normalised RGB NCHW float and
    int64 labels, and with `targets` (a teacher's logits per frame, N x C x h x w) those
    warped to the same crops.
    """
    n, h, w = labels.shape
    dev, (ch, cw) = labels.device, crop
    r = torch.rand(n, 4, generator=generator, device=dev)
    s = scale_range[0] + r[:, 0] * (scale_range[1] - scale_range[0])
    hs, ws = (h * s).round().clamp(min=1), (w * s).round().clamp(min=1)
    y0 = (r[:, 1] * ((hs - ch).clamp(min=0) + 1)).floor()
    x0 = (r[:, 2] * ((ws - cw).clamp(min=0) + 1)).floor()
    if rare_crop is not None:
        y0, x0 = _rare_corners(labels, (hs, ws), crop, (y0, x0), ignore, rare_crop, generator)
    cols = torch.arange(cw, device=dev, dtype=torch.float32)
    cols = torch.where((r[:, 3] < 0.5)[:, None], cw - 1 - cols, cols)  # flip after the crop
    ys = y0[:, None] + torch.arange(ch, device=dev, dtype=torch.float32)  # in the scaled frame
    xs = x0[:, None] + cols
    inside = (ys < hs[:, None])[:, :, None] & (xs < ws[:, None])[:, None, :]
    rows = source_index(ys.long(), h, hs.long()[:, None]).clamp(max=h - 1)
    columns = source_index(xs.long(), w, ws.long()[:, None]).clamp(max=w - 1)
    lab = labels[torch.arange(n, device=dev)[:, None, None], rows[:, :, None],
                 columns[:, None, :]]
    grid = crop_grid(ys, xs, hs, ws)
    img = F.grid_sample(images.permute(0, 3, 1, 2).float(), grid, mode="bilinear",
                        padding_mode="border", align_corners=False)
    img = img * inside[:, None]  # black padding, as cv2.copyMakeBorder(value=0) before normalize
    if photometric:
        img = photometric_batch(img, generator)
    out = (normalize_batch(img), torch.where(inside, lab.long(), ignore))
    return out if targets is None else (*out, warp_targets(targets, grid))


def _rare_corners(labels: torch.Tensor, scaled: tuple[torch.Tensor, torch.Tensor],
                  crop: tuple[int, int], corners: tuple[torch.Tensor, torch.Tensor],
                  ignore: int, rare_crop: RareCrop, generator: torch.Generator | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """`rare_pixel` for a batch: per frame, by `rare_crop.chance`, the crop corners (y0, x0)
    in the scaled frames (sizes `scaled`) that put a pixel of a class drawn ∝ 1/share at a
    uniform place in the crop; the other frames (and those with no labelled pixel) keep
    `corners`."""
    n, h, w = labels.shape
    dev, k = labels.device, len(rare_crop.share)
    lab = torch.where(labels == ignore, k, labels.long())
    present = torch.zeros(n, k + 1, device=dev).scatter_(1, lab.reshape(n, -1), 1.0)[:, :k]
    share = torch.as_tensor(rare_crop.share, dtype=torch.float32, device=dev).clamp(min=1e-6)
    labelled = present.any(1)
    weight = torch.where(labelled[:, None], present / share, 1.0)  # unlabelled: any, unused
    cls = torch.multinomial(weight, 1, generator=generator)
    score = torch.rand(n, h, w, generator=generator, device=dev)
    flat = score.masked_fill(lab != cls[:, :, None], -1.0).view(n, -1).argmax(1)
    u = torch.rand(n, 3, generator=generator, device=dev)
    placed = []
    for src, size, extent, side, corner, offset in zip(
            (flat // w, flat % w), scaled, (h, w), crop, corners, (u[:, 0], u[:, 1])):
        at = ((src + 0.5) * size / extent).floor()  # the pixel in the scaled frame
        free = (size - side).clamp(min=0)
        placed.append(torch.where(labelled & (u[:, 2] < rare_crop.chance),
                                  (at - (offset * side).floor()).clamp(min=0).minimum(free),
                                  corner))
    return placed[0], placed[1]


class DeviceCamVid:
    """One CamVid split held as uint8 tensors on `device`: `images` (N, H, W, 3) BGR and
    `labels` (N, H, W); all frames must share one size (CamVid's are 360x480). `targets`, when
    given, holds a teacher's cached logits per frame (N, C, h, w), in frame order; with
    `exposure_target` the frames are held brightened (`core.exposure`)."""

    def __init__(self, split: str | Frames, device: torch.device | str, root: str | None = None,
                 limit: int | None = None, targets: Sequence[torch.Tensor] | None = None,
                 exposure_target: float | None = None) -> None:
        data = frames_of(split, root)
        n = min(len(data), limit) if limit else len(data)

        def frame(i: int) -> tuple[np.ndarray, np.ndarray]:
            img, label = data[i]
            return normalise_exposure(img, exposure_target), label
        with ThreadPoolExecutor(max_workers=8) as pool:  # cv2 decodes outside the GIL
            frames = list(pool.map(frame, range(n)))
        sizes = sorted({label.shape for _, label in frames})
        if len(sizes) != 1:
            raise ValueError(f"CamVid {split}: frames of several sizes {sizes}; device_data "
                             f"needs one size (train with device_data off)")
        self.images = torch.from_numpy(np.stack([img for img, _ in frames])).to(device)
        self.labels = torch.from_numpy(np.stack([label for _, label in frames])).to(device)
        self.ignore = data.dataset.ignore_index
        self.targets = None if targets is None else torch.stack(
            [targets[i] for i in range(n)]).to(device)

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
                 world_size: int = 1, photometric: bool = False) -> None:
        self.data, self.batch, self.crop, self.scale_range = data, batch, crop, scale_range
        self.photometric = photometric
        self.rare_crop: RareCrop | None = None
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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
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
                targets = None if self.data.targets is None else self.data.targets[sel]
                yield augment_batch(images, labels, self.crop, self.scale_range,
                                    self.data.ignore, gen, self.photometric, targets,
                                    self.rare_crop)
