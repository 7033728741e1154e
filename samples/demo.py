"""`make demo`: export the shipped model to ONNX and segment CamVid val frames on the CPU.

Uses CamVid ($LGCNET_CAMVID; `make demo` sets it in a checkout) when present, else a generated
street-like frame that is labelled SYNTHETIC on the image itself. Writes overlays and prints
where they are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from lgcnet_deploy import Segmenter
from lgcnet_deploy.cli.commands.predict import segment_video
from lgcnet_deploy.core.data import CamVid, camvid_root
from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact


def synthetic_frame(h: int = 360, w: int = 480) -> np.ndarray:
    """A plain street-like drawing (sky, buildings, road, car), clearly labelled as generated."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 3] = (235, 206, 160)  # sky (BGR)
    img[h // 3: h // 2] = (60, 60, 140)  # buildings
    road = np.array([[0, h], [w, h], [w * 2 // 3, h // 2], [w // 3, h // 2]], np.int32)
    img[h // 2:] = (80, 120, 80)
    cv2.fillPoly(img, [road], (128, 110, 120))
    cv2.rectangle(img, (w // 2 - 40, h * 2 // 3), (w // 2 + 40, h * 2 // 3 + 45), (40, 20, 160), -1)
    cv2.putText(img, "SYNTHETIC FRAME (no CamVid found)", (10, 25), cv2.FONT_HERSHEY_SIMPLEX,
                0.6, (0, 0, 255), 2)
    return img


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True, help="checkpoint to export")
    ap.add_argument("--out", type=Path, default=Path("out/demo"))
    ap.add_argument("--frames", type=int, default=12, help="CamVid val frames to segment")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    onnx_path = make_artifact(args.model, args.out / "lgcnet_camvid.onnx",
                              ArtifactSpec(dynamic_batch=True)).path
    print(f"exported {args.model} -> {onnx_path}")

    if CamVid.available():
        val = CamVid("val")
        step = max(1, len(val) // args.frames)
        frames = {val.images[i].stem: val[i][0] for i in range(0, len(val), step)}
        print(f"segmenting {len(frames)} CamVid val frames from {camvid_root()}")
    else:
        frames = {"synthetic": synthetic_frame()}
        print("CamVid not found (set LGCNET_CAMVID): segmenting a generated, labelled frame")

    with Segmenter(onnx_path) as seg:
        results = seg.predict(list(frames.values()))
        for name, r in zip(frames, results):
            cv2.imwrite(str(args.out / f"{name}_overlay.png"), r.plot(0.5))
        print(f"ONNX Runtime CPU, {seg.input_size[0]}x{seg.input_size[1]}, batch "
              f"{len(results)}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in seg.speed.items())
              + " per frame")
        print(f"wrote {len(results)} overlays to {args.out.resolve()}/")
        if CamVid.available():  # the val split is 101 consecutive frames at 15 Hz: a video
            run = segment_video(seg, camvid_root() / "val" / "images",
                                args.out / "camvid_val_overlay.mp4")
            print(f"wrote {run.path.resolve()} ({run.frames} frames of the CamVid val "
                  f"sequence, pipelined)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
