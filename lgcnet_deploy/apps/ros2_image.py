"""`sensor_msgs/Image` and `CompressedImage` <-> OpenCV frames, without cv_bridge (which is not
on PyPI). Only the message fields are read, so any object with them converts."""

from __future__ import annotations

from array import array

import cv2
import numpy as np

from lgcnet_deploy.core.errors import BadInputError

# encoding -> (channels, OpenCV conversion to BGR or None)
IMAGE_ENCODINGS = {"bgr8": (3, None), "rgb8": (3, cv2.COLOR_RGB2BGR),
                   "mono8": (1, cv2.COLOR_GRAY2BGR)}


def image_to_bgr(msg) -> np.ndarray:
    """A `sensor_msgs/Image` (bgr8, rgb8 or mono8, rows padded to `step` or not) as an
    HxWx3 BGR uint8 frame."""
    encoding = msg.encoding.lower()
    if encoding not in IMAGE_ENCODINGS:
        raise BadInputError(f"image encoding {msg.encoding!r} is not supported; publish one of "
                            f"{', '.join(IMAGE_ENCODINGS)} (or CompressedImage with "
                            f"image_transport:=compressed)")
    channels, to_bgr = IMAGE_ENCODINGS[encoding]
    h, w, step = msg.height, msg.width, msg.step
    data = np.frombuffer(msg.data, np.uint8)
    if h == 0 or w == 0:
        raise BadInputError(f"empty image ({w}x{h})")
    if step < w * channels or data.size < step * h:
        raise BadInputError(f"{w}x{h} {encoding} image: step {step} and {data.size} bytes of data "
                            f"do not hold {h} rows of {w * channels} bytes")
    pixels = data[: step * h].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    return np.ascontiguousarray(pixels) if to_bgr is None else cv2.cvtColor(pixels, to_bgr)


def compressed_to_bgr(msg) -> np.ndarray:
    """A `sensor_msgs/CompressedImage` (JPEG or PNG, colour or grey) as a BGR uint8 frame."""
    frame = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise BadInputError(f"compressed image (format {msg.format!r}, {len(msg.data)} bytes) "
                            f"could not be decoded; JPEG and PNG are supported")
    return frame


def fill_image(msg, pixels: np.ndarray, header) -> object:
    """Fill a `sensor_msgs/Image` with an HxW (mono8) or HxWx3 (bgr8) uint8 array, unpadded,
    under `header`; returns `msg`."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise BadInputError(f"expected HxW or HxWx3 uint8, got {pixels.shape} {pixels.dtype}")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels not in (1, 3):
        raise BadInputError(f"expected 1 or 3 channels, got {channels}")
    msg.header = header
    msg.height, msg.width = pixels.shape[:2]
    msg.encoding = "mono8" if channels == 1 else "bgr8"
    msg.is_bigendian = 0
    msg.step = msg.width * channels
    data = array("B")
    data.frombytes(np.ascontiguousarray(pixels).data)  # one copy, not a Python loop
    msg.data = data
    return msg
