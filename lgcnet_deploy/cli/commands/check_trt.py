"""`lgcnet check-trt`: the TensorRT-compatibility gate on an ONNX, no TensorRT or GPU needed."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-trt", help="check an ONNX against TensorRT's rules (no GPU needed)",
        description="Report every TensorRT rule the ONNX breaks: UINT8 only as a graph input "
        "feeding a Cast or as a graph output; ops and their input types in onnx-tensorrt's "
        "supported-operator list; DequantizeLinear inputs INT8; Q/DQ zero points 0 and "
        "per-channel axes on weights' output channels; dynamic dimensions only with a build "
        "profile. Warnings: fp32 tensors at full resolution in an FP16 graph. Exit status 1 "
        "when a rule is broken (what `lgcnet build` refuses).",
        epilog="examples:\n  lgcnet check-trt engines/lgcnet.onnx\n"
        "  lgcnet check-trt engines/lgcnet_b.onnx --profile   # built with --batch/--min..",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", type=Path, help="ONNX model to check")
    p.add_argument("--profile", action="store_true",
                   help="the build will give the input an optimisation profile (lgcnet build "
                   "--batch N or --min/--opt/--max), so dynamic dimensions are fine")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="show at most N findings per rule (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import onnx

    from lgcnet_deploy.export.engine.trt_rules import check_onnx, errors, report

    if not args.onnx.is_file():
        raise FileNotFoundError(f"ONNX model not found: {args.onnx}")
    try:
        model = onnx.load(str(args.onnx), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends: not an ONNX file
        raise ValueError(f"{args.onnx} is not a readable ONNX model ({e})") from e
    findings = check_onnx(model, profiled_inputs={i.name for i in model.graph.input}
                          if args.profile else ())
    print(report(findings, str(args.onnx), args.limit))
    return 1 if errors(findings) else 0
