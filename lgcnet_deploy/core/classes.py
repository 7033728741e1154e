"""The one place for class lists, palettes and preprocessing constants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Class names, their RGB colours and the label id that is ignored."""

    name: str
    classes: tuple[str, ...]
    palette_rgb: tuple[tuple[int, int, int], ...]
    ignore_index: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def palette_bgr(self) -> np.ndarray:
        """(num_classes, 3) uint8 palette in OpenCV's BGR order."""
        return np.asarray(self.palette_rgb, dtype=np.uint8)[:, ::-1].copy()


# CamVid's own README: 11 SegNet classes, id 11 is void.
CAMVID = Dataset(
    name="camvid",
    classes=("sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car",
             "pedestrian", "bicyclist"),
    palette_rgb=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                 (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                 (0, 128, 192)),
    ignore_index=11,
)

# Cityscapes' 19 train ids, used only for the paper's speed setting (benchmarks).
CITYSCAPES = Dataset(
    name="cityscapes",
    classes=("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
             "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
             "bus", "train", "motorcycle", "bicycle"),
    palette_rgb=((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                 (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
                 (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
                 (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)),
    ignore_index=255,
)

DATASETS = {d.name: d for d in (CAMVID, CITYSCAPES)}

# Input normalisation, applied to RGB in [0, 1]; frames arrive as OpenCV BGR uint8.
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)

# CamVid's native SegNet resolution, the default model input (H, W).
DEFAULT_INPUT_SIZE = (360, 480)
# The paper's speed setting (Cityscapes 1024x2048 resized), (H, W).
PAPER_INPUT_SIZE = (769, 1537)
