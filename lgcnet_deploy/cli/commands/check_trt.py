"""`lgcnet check-trt`: the TensorRT-compatibility gate on an ONNX, no TensorRT or GPU needed."""

from __future__ import annotations

import argparse
from pathlib import Path

from lgcnet_deploy.core.errors import MissingFileError, damaged

DEFAULT_LIMIT = 3  # findings shown per rule: a CPU-quantized model breaks one rule 600 times
# rules whose errors mean Q/DQ made for another runtime (ONNX Runtime's CPU kernels)
QDQ_RULES = ("qdq-type", "qdq-zero-point", "qdq-axis")
REQUANTIZE_HINT = ("hint: this INT8 model's Q/DQ nodes are not TensorRT's (e.g. `lgcnet quantize "
                   "--target cpu`: UINT8 activations for ONNX Runtime's CPU kernels); quantize "
                   "its fp32 ONNX for TensorRT: lgcnet quantize FP32.onnx -o MODEL.int8.onnx "
                   "--target tensorrt")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-trt", help="check an ONNX against TensorRT's rules (no GPU needed)",
        description="Report every TensorRT rule the ONNX breaks. Errors (what TensorRT "
        "refuses): UINT8 other than a graph input cast to FP32/FP16 or a graph output cast "
        "from them; ops onnx-tensorrt lists as unsupported; DequantizeLinear inputs other "
        "than INT8/FP8/INT4/FP4, UINT8 quantization; Q/DQ zero points not constant zeros, "
        "scales <= 0, per-channel activations; dynamic dimensions without a build profile. "
        "Warnings (the parser takes it, this check cannot prove it right, or it costs "
        "speed): ops newer than the operator list, data types it does not name, computed "
        "scales, per-channel ConvTranspose weights, fp32 tensors at full resolution in an "
        "FP16 graph. Exit status 1 when there is an error (what `lgcnet build` refuses).",
        epilog="examples:\n  lgcnet check-trt engines/lgcnet.onnx\n"
        "  lgcnet check-trt engines/lgcnet_b.onnx --profile   # built with --batch/--min..",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", type=Path, help="ONNX model to check")
    p.add_argument("--profile", action="store_true",
                   help="the build will give the input an optimisation profile (lgcnet build "
                   "--batch N or --min/--opt/--max), so dynamic dimensions are fine")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                   help=f"show at most N findings per rule, then how many more (default "
                   f"{DEFAULT_LIMIT}; 0: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import onnx

    from lgcnet_deploy.artifact.engine.trt_rules import check_onnx, errors, report

    if not args.onnx.is_file():
        raise MissingFileError(f"ONNX model not found: {args.onnx}")
    try:
        model = onnx.load(str(args.onnx), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends: not an ONNX file
        raise damaged(args.onnx, "ONNX model", e) from e
    findings = check_onnx(model, profiled_inputs={i.name for i in model.graph.input}
                          if args.profile else ())
    print(report(findings, str(args.onnx), args.limit or None))
    if any(f.rule in QDQ_RULES for f in errors(findings)):
        print(REQUANTIZE_HINT)
    return 1 if errors(findings) else 0
