"""Soak test (a benchmark, not a CI test): N frames through `Segmenter.predict` and through
`Segmenter.stream` on the ONNX Runtime CPU path at a small input size, printing the process's
resident memory (RSS) at intervals and its slope after warm-up. Flat memory means a slope
of a few bytes per frame at most (allocator noise), not kilobytes.

    nice -n 10 python samples/soak.py [--frames 10000] [--imgsz 64x96] [--model M]

Without --model it exports the shipped checkpoint at --imgsz into a temporary folder. Linux
(reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from lgcnet_deploy import Segmenter
from lgcnet_deploy.core.data import CamVid
from lgcnet_deploy.model.shipped import DEFAULT_MODEL


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def frames(n: int, size: tuple[int, int]):
    """`n` frames cycling over a few real CamVid frames (noise without CamVid), at `size`."""
    if CamVid.available():
        val = CamVid("val")
        base = [val[i][0] for i in range(0, len(val), 20)]
    else:
        rng = np.random.default_rng(0)
        base = [rng.integers(0, 256, (360, 480, 3), dtype=np.uint8) for _ in range(5)]
    base = [cv2.resize(f, (size[1], size[0])) for f in base]
    for i in range(n):
        yield base[i % len(base)]


def soak(name: str, results, n: int, every: int, warmup: int) -> None:
    """Consume `results`, sampling RSS every `every` frames; print the samples and slope."""
    samples: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    for i, _ in enumerate(results, 1):
        if i % every == 0 or i == n:
            samples.append((i, rss_mib()))
            print(f"  {name:<8} frame {i:>6}: RSS {samples[-1][1]:7.1f} MiB", flush=True)
    seconds = time.perf_counter() - t0
    steady = [(i, m) for i, m in samples if i > warmup]
    x, y = np.array([i for i, _ in steady], float), np.array([m for _, m in steady])
    slope = np.polyfit(x, y, 1)[0] * 1024 * 1024 if len(steady) > 1 else float("nan")
    print(f"{name}: {n} frames in {seconds:.1f} s ({n / seconds:.0f} FPS); RSS after warm-up "
          f"{y.min():.1f}..{y.max():.1f} MiB, slope {slope:+.1f} bytes/frame")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--imgsz", default="64x96", help="model input HxW (also the frame size)")
    ap.add_argument("--model", default=None, help="an .onnx (default: export the shipped one)")
    ap.add_argument("--every", type=int, default=1000, help="RSS sample interval (frames)")
    ap.add_argument("--warmup", type=int, default=1000, help="frames excluded from the slope")
    args = ap.parse_args()
    size = tuple(int(s) for s in args.imgsz.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact

            model = make_artifact(DEFAULT_MODEL, Path(tmp) / "soak.onnx",
                                  ArtifactSpec(input_size=size)).path
        with Segmenter(model) as seg:
            print(f"{seg!r}; start RSS {rss_mib():.1f} MiB")
            n = args.frames
            soak("predict", (seg.predict(f) for f in frames(n, size)), n, args.every,
                 args.warmup)
            soak("stream", seg.stream(frames(n, size)), n, args.every, args.warmup)


if __name__ == "__main__":
    main()
