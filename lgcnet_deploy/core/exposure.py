"""Exposure normalisation: a dark frame brightened, before the net sees it, by the gamma that
takes its mean luminance to a target; frames at or above the target pass unchanged.

A model that learnt on daylight drives reads a dusk frame's dark sky as building or tree; the
same frame brightened reads as it should. A model trained with a target in its recipe
(`exposure_target`) carries it in its metadata, and the `Segmenter` and the trainer apply this
one function to every frame, so a deployed frame is prepared as the training frames were.
A model without it (None) sees frames as they come.
"""

from __future__ import annotations

import cv2
import numpy as np

from lgcnet_deploy.core.errors import BadInputError

# Rec. 601 luma weights in OpenCV's BGR channel order.
LUMA_BGR = (0.114, 0.587, 0.299)
# The mean luminance is read on at most about this many pixels (a strided grid): the mean of a
# whole frame, at a fraction of the cost of reading every pixel of a large one.
MEAN_PIXELS = 1 << 16
# The strongest brightening: gamma 1/3, e.g. a frame of mean luminance 0.07 to 0.41.
MIN_GAMMA = 1 / 3


class ExposureError(BadInputError):
    """An exposure target outside (0, 1)."""


def check_target(target: float) -> float:
    """`target` as a float, or ExposureError unless it is a mean luminance in (0, 1)."""
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
        raise ExposureError(f"exposure target {target!r}: give a mean luminance between 0 and "
                            f"1 (0.45 brightens frames darker than a mid-grey mean)")
    return float(target)


def mean_luminance(bgr: np.ndarray) -> float:
    """Mean Rec. 601 luminance in [0, 1] of a uint8 BGR frame (H, W, 3)."""
    step = max(1, round((bgr.shape[0] * bgr.shape[1] / MEAN_PIXELS) ** 0.5))
    channel_means = cv2.mean(np.ascontiguousarray(bgr[::step, ::step]))[:3]
    return sum(w * m for w, m in zip(LUMA_BGR, channel_means)) / 255.0


def exposure_gamma(bgr: np.ndarray, target: float) -> float:
    """The gamma (<= 1) that brightens `bgr`'s mean luminance to about `target`; 1 for a frame
    at or above it."""
    luminance = mean_luminance(bgr)
    if luminance >= target:
        return 1.0
    return max(MIN_GAMMA, float(np.log(target) / np.log(max(luminance, 1e-3))))


def apply_gamma(bgr: np.ndarray, gamma: float) -> np.ndarray:
    """`bgr` (uint8) through the curve 255 * (v / 255) ** gamma; the frame itself at gamma 1."""
    if gamma == 1.0:
        return bgr
    curve = np.rint(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return cv2.LUT(bgr, curve)


def normalise_exposure(bgr: np.ndarray, target: float | None) -> np.ndarray:
    """`bgr` brightened to mean luminance `target` (`exposure_gamma`); as it is when `target`
    is None."""
    if target is None:
        return bgr
    return apply_gamma(bgr, exposure_gamma(bgr, target))
