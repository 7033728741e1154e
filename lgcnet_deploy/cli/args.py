"""Argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse


def image_size(text: str) -> tuple[int, int]:
    """Parse 'HxW' (e.g. 769x1537) or a single 'S' for a square size."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 360x480, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 32:
        raise argparse.ArgumentTypeError(f"expected HxW with both sides >= 32, got {text!r}")
    return parts[0], parts[1]


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu",
                   help="cpu (default), cuda[:N], or tensorrt (ONNX Runtime's TensorRT provider)")
