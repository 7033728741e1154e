"""`lgcnet quantize`: fp32 ONNX -> INT8 QDQ ONNX (post-training, calibrated on real frames)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from lgcnet_deploy.export.int8 import DEFAULT_LIST, TARGETS

    p = sub.add_parser(
        "quantize", help="INT8 post-training quantisation of an exported ONNX (QDQ)",
        description="Calibrate on the frames listed in a calibration list and write a QDQ "
        "ONNX. --target tensorrt (default): symmetric int8, what `lgcnet build --precision "
        "int8` needs. --target cpu: uint8 activations, ONNX Runtime's fast x86 kernels.",
        epilog="example: lgcnet quantize engines/lgcnet.onnx -o engines/lgcnet.int8.onnx")
    p.add_argument("model", type=Path, help="fp32 ONNX from `lgcnet export`")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--target", choices=TARGETS, default="tensorrt")
    p.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="minmax",
                   help="activation range calibration (default minmax)")
    p.add_argument("--calib-list", type=Path, default=DEFAULT_LIST,
                   help="text file of frame paths relative to the CamVid root")
    p.add_argument("--calib-frames", type=int, default=None, help="use only the first N")
    p.add_argument("--data", type=Path, default=None, help="CamVid root")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lgcnet_deploy.export.int8 import calibration_frames
    from lgcnet_deploy.export.pipeline import ArtifactSpec, make_artifact

    frames = tuple(calibration_frames(args.calib_list, args.data, args.calib_frames))
    spec = ArtifactSpec(precision="int8", int8_target=args.target, int8_method=args.method,
                        calibration=frames)
    out = make_artifact(args.model, args.output, spec).path
    print(f"wrote {out} (int8 QDQ for {args.target}, {len(frames)} calibration frames, "
          f"{args.method})")
    return 0
