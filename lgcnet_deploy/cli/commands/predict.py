"""`lgcnet predict`: segment an image, a folder of images, a video, a webcam or a stream."""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path

from lgcnet_deploy.cli.args import add_device
from lgcnet_deploy.core.errors import BadInputError, MissingFileError
from lgcnet_deploy.runtime.video import IMAGE_SUFFIXES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="segment an image, an image folder, a video, a webcam or a stream",
        description="Segment SOURCE with MODEL and write, per image, NAME_mask.png (class ids) "
        "and NAME_overlay.png (colours blended over the frame, with the class legend); a "
        "video, webcam or stream becomes NAME_overlay.mp4, decoded and inferred in a "
        "pipeline. Files appear only when complete (written under a temporary name, then "
        "renamed); the output folder is created when the first result is ready. A camera or "
        "stream runs until it ends or Ctrl-C, and keeps what it recorded.",
        epilog="examples:\n  lgcnet predict --model lgcnet.onnx street.jpg\n"
        "  lgcnet predict --model lgcnet.onnx frames/ -o frames/pred\n"
        "  lgcnet predict --model lgcnet.engine --device cuda drive.mp4 -o out/\n"
        "  lgcnet predict --model lgcnet.onnx 0                       # webcam 0\n"
        "  lgcnet predict --model lgcnet.onnx rtsp://192.168.1.20/live --max-frames 900",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="image file, folder of images, video file, webcam index "
                   "(0, 1, ...) or stream URL (rtsp://, rtmp://, http(s)://)")
    p.add_argument("--model", default=None,
                   help="model file (.onnx, .pt, .engine) or a shipped model's short name; "
                   "default: lgcnet-camvid")
    p.add_argument("-o", "--output", type=Path, default=Path("runs/predict"),
                   help="output folder (default runs/predict); not the source folder itself")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay colour weight (0..1)")
    p.add_argument("--resize", choices=("stretch", "letterbox"), default=None,
                   help="frames of another aspect than the model's: stretch them (default; "
                   "warns once when nobody chose) or letterbox them (aspect kept, padded)")
    p.add_argument("--no-mask", action="store_true", help="do not write the class-id PNGs")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable image of a folder (default: skip it, "
                   "warn and count it)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="video/webcam/stream: stop after N frames")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="stream: seconds to wait for the connection and for each frame")
    p.add_argument("--no-verify", action="store_true",
                   help="load an ONNX whose weights differ from the digest recorded at export "
                   "(for graphs edited on purpose)")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # FFmpeg logs a dropped stream to stderr; the summary line says it instead.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    from lgcnet_deploy.runtime.video import FrameSource, source_kind

    out: Path = args.output
    if out.exists() and not out.is_dir():
        raise BadInputError(f"-o {out} is an existing file; -o takes a folder")
    if not 0.0 <= args.alpha <= 1.0:
        raise BadInputError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.max_frames is not None and args.max_frames < 1:
        raise BadInputError(f"--max-frames must be >= 1, got {args.max_frames}")
    with warnings.catch_warnings():  # the Segmenter's geometry warning, as one line
        warnings.showwarning = lambda message, *_: print(f"warning: {message}", file=sys.stderr)
        if source_kind(args.source) in ("camera", "stream", "video"):
            # probed before the model loads: a bad source fails fast, and nothing is written
            src = FrameSource(args.source, timeout_s=args.timeout, max_frames=args.max_frames)
            return _predict_video(args, src)
        return _predict_images(args, _image_list(Path(args.source), out))


def _image_list(src: Path, out: Path) -> list[Path]:
    if not src.exists():
        raise MissingFileError(f"source not found: {src}")
    if src.is_file():
        return [src]
    if out.resolve() == src.resolve():
        raise BadInputError(f"-o {out} is the source folder: outputs would mix with (and on the "
                            f"next run be read as) inputs; use a subfolder, e.g. -o {out / 'pred'}")
    images = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                    and p.is_file())
    if not images:
        raise MissingFileError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {src}")
    return images


def _segmenter(args: argparse.Namespace):
    from lgcnet_deploy.model.shipped import DEFAULT_MODEL
    from lgcnet_deploy.runtime.segmenter import Segmenter

    return Segmenter(args.model or DEFAULT_MODEL, device=args.device, verify=not args.no_verify,
                     resize=args.resize)


def _predict_images(args: argparse.Namespace, images: list[Path]) -> int:
    from tqdm import tqdm

    from lgcnet_deploy.core.data import read_image
    from lgcnet_deploy.runtime.video import write_image

    written, skipped = 0, []
    with _segmenter(args) as seg, tqdm(images, desc="predict", unit="img", leave=False,
                                       disable=len(images) == 1) as bar:
        for path in bar:
            try:
                frame = read_image(path)
            except (OSError, ValueError) as e:
                if len(images) == 1:
                    raise
                if args.strict:
                    raise BadInputError(f"{e} (--strict: stopped after {written} image(s))") from e
                tqdm.write(f"warning: skipped: {e}", file=sys.stderr)
                skipped.append(path)
                continue
            r = seg.predict(frame)
            write_image(args.output / f"{path.stem}_overlay.png", r.plot(args.alpha))
            if not args.no_mask:
                r.save(args.output / f"{path.stem}_mask.png")
            written += 1
        if not written:
            raise BadInputError(f"none of the {len(images)} images could be read (see warnings)")
        ms = " ".join(f"{k} {v:.1f}" for k, v in seg.speed.items())
    note = f"; skipped {len(skipped)} unreadable image(s)" if skipped else ""
    print(f"wrote {written} result(s) to {args.output}{note} (last frame ms: {ms})")
    return 0


def _video_name(src) -> str:
    """NAME of NAME_overlay.mp4: the file's stem, camera<N>, or the stream's last path part."""
    if src.kind == "camera":
        return f"camera{src.target}"
    if src.kind == "stream":
        from urllib.parse import urlsplit

        parts = urlsplit(src.target)
        tail = Path(parts.path).stem or parts.hostname or "stream"
        return "stream_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", tail)
    return Path(src.target).stem


def _predict_video(args: argparse.Namespace, src) -> int:
    from lgcnet_deploy.runtime.video import segment_video

    with _segmenter(args) as seg:
        run = segment_video(seg, src, args.output / f"{_video_name(src)}_overlay.mp4",
                            args.alpha, progress=True)
    if run.interrupted:
        how = f"stopped by Ctrl-C after {run.frames} frames"
    elif src.live and (args.max_frames is None or run.frames < args.max_frames):
        how = f"{run.source} ended after {run.frames} frames"
    else:
        how = f"{run.frames} frames"
    print(f"wrote {run.path} ({how})")
    return 0
