"""`lgcnet predict`: segment an image, a folder of images or a video."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgcnet_deploy.cli.args import add_device
from lgcnet_deploy.runtime.video import IMAGE_SUFFIXES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="segment an image, an image folder or a video",
        description="Segment SOURCE with MODEL and write, per image, NAME_mask.png (class ids) "
        "and NAME_overlay.png (colours blended over the frame); a video becomes "
        "NAME_overlay.mp4, decoded and inferred in a pipeline.",
        epilog="examples:\n  lgcnet predict --model lgcnet.onnx street.jpg\n"
        "  lgcnet predict --model lgcnet.engine --device cuda drive.mp4 -o out/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="image file, folder of images, or video file")
    p.add_argument("--model", type=Path, default=None,
                   help="model file (.onnx, .pt, .engine); default: the shipped CamVid model")
    p.add_argument("-o", "--output", type=Path, default=Path("runs/predict"),
                   help="output folder (default runs/predict)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay colour weight (0..1)")
    p.add_argument("--no-mask", action="store_true", help="do not write the class-id PNGs")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from lgcnet_deploy.core.data import read_image
    from lgcnet_deploy.runtime.segmenter import DEFAULT_MODEL, Segmenter

    src: Path = args.source
    if not src.exists():
        raise FileNotFoundError(f"source not found: {src}")
    args.output.mkdir(parents=True, exist_ok=True)
    with Segmenter(args.model or DEFAULT_MODEL, device=args.device) as seg:
        if src.is_file() and src.suffix.lower() not in IMAGE_SUFFIXES:
            from lgcnet_deploy.runtime.video import segment_video

            out = segment_video(seg, src, args.output / f"{src.stem}_overlay.mp4", args.alpha)
            print(f"wrote {out}")
            return 0
        images = [src] if src.is_file() else sorted(
            p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {src}")
        for path in tqdm(images, desc="predict", unit="img", disable=len(images) == 1):
            r = seg.predict(read_image(path))
            cv2.imwrite(str(args.output / f"{path.stem}_overlay.png"), r.overlay(args.alpha))
            if not args.no_mask:
                cv2.imwrite(str(args.output / f"{path.stem}_mask.png"), r.mask)
        ms = " ".join(f"{k} {v:.1f}" for k, v in seg.speed.items())
        print(f"wrote {len(images)} result(s) to {args.output} (last frame ms: {ms})")
    return 0
