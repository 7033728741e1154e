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

    def overlay_bgr(self) -> np.ndarray:
        """(num_classes, 3) uint8 BGR colours for overlays: DISTINCT_RGB, which tells
        neighbouring classes apart where the dataset's palette does not (CamVid's road,
        sidewalk, fence and car are all purple-blue); masks keep the dataset's palette."""
        rgb = [DISTINCT_RGB[i % len(DISTINCT_RGB)] for i in range(self.num_classes)]
        return np.asarray(rgb, dtype=np.uint8)[:, ::-1].copy()


# Overlay colours that stay apart when blended over a frame: Kelly's 22 colours of maximum
# contrast without white and black (K. L. Kelly, "Twenty-two colors of maximum contrast").
DISTINCT_RGB = ((243, 195, 0), (135, 86, 146), (243, 132, 0), (161, 202, 241), (190, 0, 50),
                (194, 178, 128), (132, 132, 130), (0, 136, 86), (230, 143, 172), (0, 103, 165),
                (249, 150, 121), (96, 78, 151), (246, 166, 0), (179, 68, 108), (220, 211, 0),
                (136, 45, 23), (141, 182, 0), (101, 69, 34), (226, 88, 34), (43, 61, 38))


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
