"""`lgcnet predict`: segment an image, a folder of images, a video, a webcam or a stream."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lgcnet_deploy.cli.args import add_device
from lgcnet_deploy.core.errors import BadInputError, MissingFileError
from lgcnet_deploy.runtime.sources import IMAGE_SUFFIXES, FrameSource, SourceError

DEFAULT_OUTPUT = Path("runs/predict")


def increment_path(path: Path, exist_ok: bool = False) -> Path:
    """`path` if it is free (or `exist_ok`), else the first free path2, path3, ...: a rerun
    never writes over the previous run's results (as ultralytics' runs/predict2)."""
    if exist_ok or not path.exists():
        return path
    n = 2
    while path.with_name(f"{path.name}{n}").exists():
        n += 1
    return path.with_name(f"{path.name}{n}")


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
    p.add_argument("-o", "--output", type=Path, default=None,
                   help=f"output folder (default {DEFAULT_OUTPUT}, then {DEFAULT_OUTPUT}2, ... "
                   f"for each new run); not the source folder itself")
    p.add_argument("--exist-ok", action="store_true",
                   help=f"write into {DEFAULT_OUTPUT} even if a run is there already")
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
    from lgcnet_deploy.runtime.sources import source_kind

    if args.output is None:
        args.output = increment_path(DEFAULT_OUTPUT, args.exist_ok)
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
    from lgcnet_deploy.runtime.drawing import write_image

    written, skipped = 0, []
    start = time.perf_counter()
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
    fps = written / max(time.perf_counter() - start, 1e-9)
    note = f"; skipped {len(skipped)} unreadable image(s)" if skipped else ""
    kinds = "overlay" + ("" if args.no_mask else " + indexed class-id mask")
    print(f"wrote {written} result(s) ({kinds} per image) to {args.output}{note}; "
          f"{fps:.1f} images/s (reading and writing included; last frame ms: {ms})")
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
    with _segmenter(args) as seg:
        run = segment_video(seg, src, args.output / f"{_video_name(src)}_overlay.mp4",
                            args.alpha, progress=True, on_recording=_say_recording
                            if src.live else None)
    if run.interrupted:
        how = f"stopped by Ctrl-C after {run.frames} frames"
    elif src.live and (args.max_frames is None or run.frames < args.max_frames):
        how = f"{run.source} ended after {run.frames} frames"
    else:
        how = f"{run.frames} frames"
    print(f"wrote {run.path} ({how}, {run.fps:.1f} FPS)")
    return 0


def _say_recording(path: Path) -> None:
    print(f"recording {path}; Ctrl-C stops it and keeps the recording", flush=True)


@dataclass
class VideoRun:
    """What `segment_video` wrote: the MP4 (None when no frame came), the frame count, and
    whether a live source was stopped by Ctrl-C (its recording is kept) or ended by itself."""

    path: Path | None
    frames: int
    source: str
    interrupted: bool = False
    fps: float = 0.0  # frames / seconds from the first frame segmented to the last


def segment_video(seg, source: str | Path | int | FrameSource, out: str | Path,
                  alpha: float = 0.5, max_frames: int | None = None,
                  progress: bool = False,
                  on_recording: Callable[[Path], None] | None = None) -> VideoRun:
    """Overlay + legend + FPS (over the last 30 frames, `FpsMeter`) for every frame of
    `source`, written to an MP4; `on_recording(out)` is called once its first frame is in.

    A file or folder that fails midway leaves no MP4 at `out`. A camera or stream runs until
    it ends or drops, or until Ctrl-C, which for a live source means "stop recording": the
    frames so far are kept and the run returns normally. A Ctrl-C before the first frame is
    recorded has nothing to keep: it stays a KeyboardInterrupt.
    """
    src = source if isinstance(source, FrameSource) else FrameSource(source)
    src.max_frames = max_frames if max_frames is not None else src.max_frames
    total = None if src.live else len(src)
    interrupted = False
    from tqdm import tqdm

    from lgcnet_deploy.runtime.drawing import FpsMeter, Mp4Writer

    with Mp4Writer(out, src.fps) as writer, tqdm(total=total, unit="frame", desc=str(src),
                                                 disable=not progress, leave=False) as bar:
        meter, start = FpsMeter(), None
        try:
            for r in seg.stream(src):
                now = time.perf_counter()
                start = now if start is None else start
                writer.write(r.plot(alpha, fps=meter.tick(now)))
                bar.update()
                if writer.frames == 1 and on_recording is not None:
                    on_recording(writer.path)
        except KeyboardInterrupt:
            if not src.live or writer.frames == 0:
                raise
            interrupted = True
    if writer.frames == 0:
        raise SourceError(f"{src}: no frames decoded")
    fps = (writer.frames - 1) / (now - start) if writer.frames > 1 and now > start else 0.0
    return VideoRun(writer.path, writer.frames, str(src), interrupted, fps)
