"""`lgcnet quantize`: fp32 ONNX -> INT8 QDQ ONNX (post-training, calibrated on real frames)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgcnet_deploy.artifact.engine import tensorrt_gpu
from lgcnet_deploy.core.errors import MissingFileError
from lgcnet_deploy.core.host import int8_instructions


def register(sub: argparse._SubParsersAction) -> None:
    from lgcnet_deploy.export.calibration.frames import DEFAULT_FRAMES, MIN_FRAMES
    from lgcnet_deploy.export.int8 import DEFAULT_LIST, TARGETS

    p = sub.add_parser(
        "quantize", help="INT8 post-training quantisation of an exported ONNX (QDQ)",
        description="Calibrate on real frames and write a QDQ ONNX.\n"
        "  --target tensorrt: symmetric int8, what `lgcnet build --precision int8` needs\n"
        "  --target cpu:      uint8 activations, ONNX Runtime's CPU kernels\n"
        "The default is the device here: tensorrt where TensorRT sees a CUDA GPU, else cpu.\n"
        "On a CPU without int8 dot-product instructions it says INT8 will not pay.",
        epilog="examples:\n  lgcnet quantize engines/lgcnet.onnx -o engines/lgcnet.int8.onnx\n"
        "  lgcnet quantize engines/lgcnet.onnx -o x.int8.onnx --calib robot_frames/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="fp32 ONNX from `lgcnet export`")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--target", choices=TARGETS, default=None,
                   help="tensorrt or cpu (default: the device here)")
    p.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="minmax",
                   help="activation range calibration (default minmax)")
    p.add_argument("--calib", type=Path, default=None, metavar="DIR",
                   help=f"frames to calibrate on: a folder of your camera's frames (images, "
                   f"subfolders too, at least {MIN_FRAMES}) or the CamVid root (default: "
                   f"$LGCNET_CAMVID)")
    p.add_argument("--calib-frames", type=int, default=DEFAULT_FRAMES, metavar="N",
                   help=f"use N frames spread evenly over them (default {DEFAULT_FRAMES})")
    p.add_argument("--calib-list", type=Path, default=DEFAULT_LIST,
                   help="CamVid layout: text file of frame paths relative to its root")
    p.add_argument("--no-compare", action="store_true",
                   help="skip timing the int8 model against the fp32 one on this CPU")
    p.set_defaults(func=run)


DEFAULT_TARGET_LINE = {
    "tensorrt": "target: tensorrt (TensorRT sees a CUDA GPU here; --target cpu for ONNX Runtime)",
    "cpu": "target: cpu (no TensorRT with a CUDA GPU here; --target tensorrt for an engine)"}


def default_target() -> str:
    """Where the INT8 model will run: TensorRT when it sees a CUDA GPU here, else the CPU."""
    return "tensorrt" if tensorrt_gpu() else "cpu"


def speed_note(target: str) -> str | None:
    """One line when INT8 will not run faster than fp32 on this machine, else None."""
    if target == "tensorrt":
        return None if tensorrt_gpu() else (
            "note: --target tensorrt is for TensorRT (`lgcnet build --precision int8` on the "
            "GPU); ONNX Runtime on this CPU runs it slower than the fp32 model")
    found = int8_instructions()
    if found is None or found:
        return None
    return ("note: this CPU has no int8 dot-product instructions (AVX512-VNNI, AVX-VNNI, AMX; "
            "Arm dotprod, i8mm): INT8 will not be faster than fp32 here; for this machine "
            "ship the fp32 model (compare with `lgcnet bench`)")


COMPARE_CALLS = 20  # timed calls per model (after 3 untimed)


def compare_speed(fp32: Path, int8: Path) -> str:
    """Time both models with ONNX Runtime on this CPU (network only, the same input) and say
    which to ship for it."""
    from lgcnet_deploy.measure.bench import benchmark

    ms = {name: benchmark(path, warmup=3, iters=COMPARE_CALLS, end_to_end=False).network.p50
          for name, path in (("fp32", fp32), ("int8", int8))}
    faster = min(ms, key=ms.get)
    verdict = (f"use the {faster} model on this machine" if abs(ms["fp32"] / ms["int8"] - 1) > 0.05
               else "no real difference here; the fp32 model keeps full accuracy")
    return (f"speed on this CPU (ONNX Runtime, median of {COMPARE_CALLS} calls): fp32 "
            f"{ms['fp32']:.1f} ms, int8 {ms['int8']:.1f} ms: {verdict}")


def _fp32_onnx(model: Path, output: Path) -> Path:
    """The fp32 ONNX to quantise: `model` if it is one, else its export beside `output`."""
    from lgcnet_deploy.core.formats import find_format
    from lgcnet_deploy.export.pipeline import make_artifact

    fmt = find_format(model)
    if fmt is not None and fmt.name == "onnx":
        return model
    return make_artifact(model, output.with_name(f"{output.stem}.fp32.onnx")).path


def run(args: argparse.Namespace) -> int:
    from lgcnet_deploy.artifact.describe import describe
    from lgcnet_deploy.core.formats import find_format
    from lgcnet_deploy.export.calibration.frames import check_resolution, find_frames
    from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact

    frames = tuple(find_frames(args.calib, args.calib_frames, args.calib_list))
    if find_format(args.model) is not None and not args.model.is_file():
        raise MissingFileError(f"model not found: {args.model}")
    target = args.target or default_target()
    if args.target is None:
        print(DEFAULT_TARGET_LINE[target])
    note = speed_note(target)
    if note:
        print(note)
    fp32 = _fp32_onnx(args.model, args.output)
    check_resolution(frames, tuple(describe(fp32)["input_size"]))
    spec = ArtifactSpec(precision="int8", int8_target=target, int8_method=args.method,
                        calibration=frames)
    out = make_artifact(fp32, args.output, spec).path
    print(f"wrote {out} (int8 QDQ for {target}, {len(frames)} calibration frames, "
          f"{args.method})")
    if target == "cpu" and not args.no_compare:
        print(compare_speed(fp32, out))
    return 0
