"""`lgcnet checks`: what this machine has for lgcnet-deploy, what each extra enables here, and
(`--gpu-smoke`) a few minutes on a GPU that prove the TensorRT engine path end to end. One
JSON report, to attach to a bug report."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

from lgcnet_deploy.cli import EXTRA_OF_PACKAGE

# extra -> what it enables (its import names come from EXTRA_OF_PACKAGE, plus those below)
ENABLES = {
    "onnx": "lgcnet check-trt / quantize on .onnx files (no torch)",
    "export": "lgcnet export, .pt checkpoints, FP16 ONNX (with [onnx])",
    "tensorrt": "lgcnet build, .engine files, --gpu-smoke (tensorrt-cu12 or tensorrt-cu13 by "
                "the driver: docs/tensorrt.md)",
    "compare": "lgcnet bench --compare (the LR-ASPP peer)",
    "ros2": "lgcnet ros2 (the ROS 2 node)",
}
MORE_MODULES = {"ros2": ["rclpy"]}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "checks", help="what this machine has for lgcnet (versions, GPU, extras); run first",
        description="Report Python and package versions, ONNX Runtime's providers, the NVIDIA "
        "driver's and the CUDA wheels' CUDA versions, GPUs and compute capability, CPU "
        "instructions (int8 dot product, bf16), and what each extra enables here; write it "
        "all as JSON. --gpu-smoke also builds and runs engines (a few minutes; needs "
        "TensorRT and a CUDA GPU, exit 4 without them). docs/tensorrt.md says how to read it.")
    p.add_argument("-o", "--output", type=Path, default=Path("lgcnet-checks.json"),
                   help="the JSON report (default: lgcnet-checks.json)")
    p.add_argument("--gpu-smoke", action="store_true",
                   help="build FP16/INT8 engines of the shipped model and run the engine "
                   "path's checks (steps in docs/tensorrt.md)")
    p.add_argument("--workdir", type=Path, default=Path("checks-work"),
                   help="where --gpu-smoke writes engines and ONNX files")
    p.add_argument("--data", type=Path, default=None,
                   help="CamVid root for --gpu-smoke's frames (default: LGCNET_CAMVID)")
    p.set_defaults(func=run)


def extras_here() -> dict[str, dict[str, Any]]:
    """Each extra: its packages present or missing, and what it enables on this machine."""
    found = {}
    for extra, enables in ENABLES.items():
        modules = [m for m, e in EXTRA_OF_PACKAGE.items() if e == extra]
        modules += MORE_MODULES.get(extra, [])
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        found[extra] = {"installed": not missing, "missing": missing, "enables": enables,
                        "install": f"pip install 'lgcnet-deploy[{extra}]'"}
    return found


def summary(report: dict[str, Any]) -> list[str]:
    """The report in a few lines for people."""
    pk, trt, cu = report["packages"], report["tensorrt"], report["cuda"]
    smi = report["nvidia_smi"] or {}
    gpus = ", ".join(f"{g['name']} (sm {g['compute_capability']})" for g in cu.get("gpus", []))
    lines = [
        f"python {report['python']} on {report['platform']}",
        f"onnxruntime {pk['onnxruntime'] or pk['onnxruntime-gpu']}: "
        f"{', '.join(report['onnxruntime_providers'])}",
        f"torch {pk['torch'] or '-'}, onnx {pk['onnx'] or '-'}, polygraphy "
        f"{pk['polygraphy'] or '-'}",
        f"tensorrt {trt.get('version') or '-'}"
        + (f" (wheel for CUDA {trt['wheel_cuda']})" if trt.get("wheel_cuda") else ""),
        f"cuda-python {pk['cuda-python'] or '-'}: driver CUDA {cu.get('driver_cuda') or '-'}, "
        f"runtime CUDA {cu.get('runtime_cuda') or '-'}; nvidia-smi driver "
        f"{smi.get('driver') or '-'}",
        f"GPUs: {gpus or 'none'}" + (f" ({cu['error']})" if cu.get("error") else ""),
        f"CPU: {report['cpu']['name']}; int8 {report['cpu']['int8_dot_product']}, bf16 "
        f"{report['cpu']['bf16']}",
    ]
    for extra, e in report["extras"].items():
        state = "yes" if e["installed"] else f"no (missing {', '.join(e['missing'])}: " \
                                              f"{e['install']})"
        lines.append(f"[{extra}] {state}: {e['enables']}")
    return lines


def run(args: argparse.Namespace) -> int:
    from lgcnet_deploy.measure.checks import environment

    report = {**environment(), "extras": extras_here()}
    for line in summary(report):
        print(line)
    if args.gpu_smoke:
        report["gpu_smoke"] = _smoke(args, report)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    print(f"report: {args.output}")
    failed = [r["step"] for r in report.get("gpu_smoke", []) if r["status"] == "fail"]
    if failed:
        raise RuntimeError(f"GPU smoke failed: {', '.join(failed)} (see {args.output})")
    return 0


def _smoke(args: argparse.Namespace, report: dict[str, Any]) -> list[dict]:
    """Run the smoke where TensorRT and a GPU exist; otherwise ImportError (exit 4), after
    writing the report, in one line saying what is missing."""
    missing = [what for what, ok in (
        ("TensorRT", report["tensorrt"].get("version")),
        ("a CUDA GPU", report["cuda"].get("gpus"))) if not ok]
    if missing:
        args.output.write_text(json.dumps(report, indent=2, default=str))
        why = report["cuda"].get("error")
        raise ImportError(f"--gpu-smoke needs {' and '.join(missing)}, not found here"
                          + (f" ({why})" if why else "") + f"; report without it: {args.output}")
    from lgcnet_deploy.measure.gpu_smoke import run_smoke
    from lgcnet_deploy.measure.gpu_toolbox import Toolbox

    return run_smoke(Toolbox(args.workdir, args.data))
